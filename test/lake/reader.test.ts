// The Delta Lake reader (src/lake/) against real tables written by Spark and Databricks (the fixtures in
// test/fixtures/delta, whose origin and expected contents are listed in their README), against broken logs
// built from them, and against a change-feed table this file writes itself. Nothing is mocked: every
// read goes through the log on disk and DuckDB.

import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeFeedCurrentStateSql, readChangeFeedCurrentState } from '../../src/lake/change-feed.ts';
import { queryRows, runSql } from '../../src/lake/duckdb.ts';
import { DeltaLogError, DeltaVersionNotFoundError, UnsupportedDeltaFeatureError } from '../../src/lake/errors.ts';
import { latestVersion } from '../../src/lake/log.ts';
import { liveRowsSql, readRows, verifyLiveFiles } from '../../src/lake/reader.ts';
import { loadSnapshot, type DeltaSnapshot } from '../../src/lake/snapshot.ts';
import { rowCountFromStats } from '../../src/lake/stats.ts';
import { assertReadableProtocol } from '../../src/lake/protocol.ts';
import { quoteLiteral } from '../../src/lake/sql.ts';
import { REPO_ROOT } from '../helpers/processes.ts';

const fixturesDir = path.join(REPO_ROOT, 'test', 'fixtures', 'delta');
const fixture = (name: string): string => path.join(fixturesDir, name);

let scratchDir: string;
beforeAll(async () => {
  scratchDir = await mkdtemp(path.join(os.tmpdir(), 'lakets-lake-reader-'));
});
afterAll(async () => {
  await rm(scratchDir, { recursive: true, force: true });
});

/** The values of one column, sorted numerically (bigint or number columns). */
async function columnValues(snapshot: DeltaSnapshot, column: string): Promise<number[]> {
  const rows = await readRows(snapshot, { columns: [column] });
  return rows.map((row) => Number(row[column])).sort((a, b) => a - b);
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** File names of live files or tombstones, for comparing with the README's lists. */
const names = (files: readonly { path: string }[]): string[] => files.map((file) => path.basename(file.path)).sort();

/**
 * Copies a fixture table to a scratch folder (the fixtures themselves are never changed), leaving out the
 * files `skip` names (paths relative to the table, with '/').
 */
async function copyTable(name: string, skip: (relative: string) => boolean = () => false): Promise<string> {
  const source = fixture(name);
  const target = await mkdtemp(path.join(scratchDir, `${name}-`));
  async function walk(relative: string): Promise<void> {
    for (const entry of await readdir(path.join(source, relative), { withFileTypes: true })) {
      const child = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (skip(child)) continue;
      if (entry.isDirectory()) {
        await mkdir(path.join(target, child), { recursive: true });
        await walk(child);
      } else {
        await copyFile(path.join(source, child), path.join(target, child));
        await chmod(path.join(target, child), 0o644);
      }
    }
  }
  await walk('');
  return target;
}

const commitName = (version: number): string => `_delta_log/${String(version).padStart(20, '0')}.json`;

describe('simple_table: adds and removes across versions, no stats, a stray .tmp commit', () => {
  const table = fixture('simple_table');

  it('takes version 4 as the latest and ignores _delta_log/.tmp/', async () => {
    expect(await latestVersion(table)).toBe(4);
    const snapshot = await loadSnapshot(table);
    expect(snapshot.version).toBe(4);
    expect(snapshot.checkpointVersion).toBeNull();
    expect(snapshot.protocol).toEqual({ minReaderVersion: 1, minWriterVersion: 2 });
    expect(snapshot.metaData.schema.fields.map((field) => [field.name, field.type])).toEqual([['id', 'long']]);
    expect(snapshot.metaData.partitionColumns).toEqual([]);
    expect(snapshot.txns.size).toBe(0);
  });

  it('reads the content of every version', async () => {
    const expected: Record<number, number[]> = {
      0: range(0, 4),
      1: range(0, 19),
      2: range(5, 9),
      3: [5, 7, 9, 106, 108],
      4: [5, 7, 9],
    };
    for (const [version, ids] of Object.entries(expected)) {
      const snapshot = await loadSnapshot(table, { version: Number(version) });
      expect(snapshot.version).toBe(Number(version));
      expect(await columnValues(snapshot, 'id'), `version ${version}`).toEqual(ids);
    }
  });

  it('has the 5 live files (two of them empty) and 31 tombstones at v4; ids are bigint', async () => {
    const snapshot = await loadSnapshot(table);
    expect(names(snapshot.files)).toEqual([
      'part-00000-2befed33-c358-4768-a43c-3eda0d2a499d-c000.snappy.parquet',
      'part-00000-c1777d7d-89d9-4790-b38a-6ee7e24456b1-c000.snappy.parquet',
      'part-00001-7891c33d-cedc-47c3-88a6-abcfb049d3b4-c000.snappy.parquet',
      'part-00004-315835fe-fb44-4562-98f6-5e6cfa3ae45d-c000.snappy.parquet',
      'part-00007-3a0e4727-de0d-41b6-81ef-5223cf40f025-c000.snappy.parquet',
    ]);
    expect(snapshot.tombstones).toHaveLength(31);
    expect(snapshot.files.every((file) => file.stats === null)).toBe(true);
    expect(rowCountFromStats(snapshot.files)).toBeNull();
    await verifyLiveFiles(snapshot);
    expect(await readRows(snapshot, { orderBy: '"id"' })).toEqual([{ id: 5n }, { id: 7n }, { id: 9n }]);
  });

  it('builds SQL over exactly the live files, never a glob of the folder', async () => {
    const snapshot = await loadSnapshot(table);
    const sql = liveRowsSql(snapshot);
    expect(sql).not.toContain('*.parquet');
    for (const file of snapshot.files) expect(sql).toContain(quoteLiteral(file.localPath));
    for (const tombstone of snapshot.tombstones) expect(sql).not.toContain(tombstone.localPath);
    const [counted] = await queryRows(`SELECT count(*) AS n, sum("id") AS total FROM (${sql}) AS t`);
    expect(counted).toEqual({ n: 3n, total: 21n });
    // The wrong way, for contrast: globbing reads removed and orphan files too (README: 32 rows).
    const [globbed] = await queryRows(`SELECT count(*) AS n FROM read_parquet(${quoteLiteral(`${table}/**/*.parquet`)})`);
    expect(globbed).toEqual({ n: 32n });
  });

  it('supports where, orderBy and limit', async () => {
    const snapshot = await loadSnapshot(table, { version: 1 });
    const rows = await readRows(snapshot, { where: '"id" >= 10', orderBy: '"id" DESC', limit: 3 });
    expect(rows).toEqual([{ id: 19n }, { id: 18n }, { id: 17n }]);
  });
});

describe('delta-0.2.0: classic checkpoint, _last_checkpoint, streaming txn', () => {
  const table = fixture('delta-0.2.0');

  it('reads v0..v3, starting from the checkpoint only at v3', async () => {
    const expected: Record<number, number[]> = { 0: [1, 2, 3], 1: [1, 1, 2, 2, 3, 3], 2: [1, 2, 3], 3: [1, 1, 2, 2, 3, 3] };
    for (const [version, values] of Object.entries(expected)) {
      const snapshot = await loadSnapshot(table, { version: Number(version) });
      expect(await columnValues(snapshot, 'value'), `version ${version}`).toEqual(values);
      // Versions before the checkpoint replay the JSON commits from v0.
      expect(snapshot.checkpointVersion).toBe(Number(version) === 3 ? 3 : null);
    }
  });

  it('recovers the txn map from the checkpoint at v3, and has none before', async () => {
    const latest = await loadSnapshot(table);
    expect(latest.version).toBe(3);
    expect(latest.checkpointVersion).toBe(3);
    expect(latest.warnings).toEqual([]);
    expect(latest.txns).toEqual(new Map([['e4a20b59-dd0e-4c50-b074-e8ae4786df30', 0n]]));
    for (const version of [0, 1, 2]) {
      expect((await loadSnapshot(table, { version })).txns.size, `version ${version}`).toBe(0);
    }
  });

  it('has 3 live files with 3, 1 and 2 rows, and 4 tombstones at v3', async () => {
    const snapshot = await loadSnapshot(table);
    expect(names(snapshot.files)).toEqual([
      'part-00000-7c2deba3-1994-4fb8-bc07-d46c948aa415-c000.snappy.parquet',
      'part-00000-cb6b150b-30b8-4662-ad28-ff32ddab96d2-c000.snappy.parquet',
      'part-00001-c373a5bd-85f0-4758-815e-7eb62007a15c-c000.snappy.parquet',
    ]);
    const rowsPerFile: Record<string, bigint> = {};
    for (const file of snapshot.files) {
      const [row] = await queryRows(`SELECT count(*) AS n FROM read_parquet(${quoteLiteral(file.localPath)})`);
      rowsPerFile[path.basename(file.path).slice(0, 19)] = row?.['n'] as bigint;
    }
    expect(rowsPerFile).toEqual({ 'part-00000-cb6b150b': 3n, 'part-00000-7c2deba3': 1n, 'part-00001-c373a5bd': 2n });
    expect(names(snapshot.tombstones)).toEqual([
      'part-00000-512e1537-8aaa-4193-b8b4-bef3de0de409-c000.snappy.parquet',
      'part-00000-b44fcdb0-8b06-4f3a-8606-f8311a96f6dc-c000.snappy.parquet',
      'part-00001-185eca06-e017-4dea-ae49-fc48b973e37e-c000.snappy.parquet',
      'part-00001-4327c977-2734-4477-9507-7ccf67924649-c000.snappy.parquet',
    ]);
    const first = snapshot.files.find((file) => file.path.includes('cb6b150b'));
    expect(first).toMatchObject({ size: 404, modificationTime: 1564524299000, partitionValues: {}, stats: null, deletionVector: null });
    await verifyLiveFiles(snapshot);
  });
});

describe('basic-with-inserts-deletes-checkpoint: checkpoint at v10, stats, later commits', () => {
  const table = fixture('basic-with-inserts-deletes-checkpoint');
  const liveAtV9 = [...range(0, 4), ...range(10, 14), ...range(20, 24), ...range(30, 34), ...range(40, 44)];

  it('reads every checked version with the exact ids', async () => {
    const expected: Record<number, number[]> = {
      4: range(0, 49),
      9: liveAtV9,
      10: [...liveAtV9, ...range(50, 59)],
      12: [...liveAtV9, ...range(50, 79)],
      13: [...liveAtV9, ...range(50, 65)],
    };
    for (const [version, ids] of Object.entries(expected)) {
      const snapshot = await loadSnapshot(table, { version: Number(version) });
      const values = await columnValues(snapshot, 'id');
      expect(values, `version ${version}`).toEqual(ids);
      expect(snapshot.checkpointVersion, `version ${version}`).toBe(Number(version) >= 10 ? 10 : null);
    }
    expect(liveAtV9).toHaveLength(25);
  });

  it('starts the latest version from the checkpoint and counts 41 rows from stats alone', async () => {
    const snapshot = await loadSnapshot(table);
    expect(snapshot.version).toBe(13);
    expect(snapshot.checkpointVersion).toBe(10);
    expect(snapshot.warnings).toEqual([]);
    expect(snapshot.files).toHaveLength(7);
    expect(rowCountFromStats(snapshot.files)).toBe(41);
    const rewritten = snapshot.files.find((file) => file.path.startsWith('part-00000-7d1a368c'));
    expect(rewritten?.stats).toEqual({ numRecords: 6, minValues: { id: 60 }, maxValues: { id: 65 }, nullCount: { id: 0 } });
    // A file that came from the checkpoint keeps its stats too.
    const fromCheckpoint = snapshot.files.find((file) => file.path.startsWith('part-00000-c92cba9e'));
    expect(fromCheckpoint?.stats).toEqual({ numRecords: 5, minValues: { id: 10 }, maxValues: { id: 14 }, nullCount: { id: 0 } });
    for (const file of snapshot.files) {
      const [row] = await queryRows(`SELECT count(*) AS n FROM read_parquet(${quoteLiteral(file.localPath)})`);
      expect(Number(row?.['n']), file.path).toBe(file.stats?.numRecords);
    }
    await verifyLiveFiles(snapshot);
  });
});

describe('kernel-timestamp-TIMESTAMP_MICROS: timestamp partition column, null partition, escaped paths', () => {
  const table = fixture('kernel-timestamp-TIMESTAMP_MICROS');

  it('decodes add.path once to the Hive-escaped directory on disk', async () => {
    const snapshot = await loadSnapshot(table);
    const file = snapshot.files.find((candidate) => candidate.path.includes('038fb25c'));
    expect(file?.logPath).toBe('part=2021-10-01%2008%253A09%253A20/part-00000-038fb25c-ca6b-43b6-b0dc-d987f38d0ab9.c000.snappy.parquet');
    expect(file?.path).toBe('part=2021-10-01 08%3A09%3A20/part-00000-038fb25c-ca6b-43b6-b0dc-d987f38d0ab9.c000.snappy.parquet');
    expect(file?.partitionValues).toEqual({ part: '2021-10-01 08:09:20' });
    const nullPartition = snapshot.files.find((candidate) => candidate.path.startsWith('part=__HIVE_DEFAULT_PARTITION__/'));
    expect(nullPartition?.partitionValues).toEqual({ part: null });
    expect(nullPartition?.stats).toEqual({ numRecords: 1, minValues: { id: 4 }, maxValues: { id: 4 }, nullCount: { id: 0, time: 1 } });
    await verifyLiveFiles(snapshot);
  });

  it('reads the 5 rows with UTC timestamps, the partition value as a typed constant', async () => {
    const snapshot = await loadSnapshot(table);
    expect(await readRows(snapshot, { orderBy: '"id"' })).toEqual([
      { id: 0, part: '2020-01-01T08:09:10.001000Z', time: '2020-02-01T08:09:10.000000Z' },
      { id: 1, part: '2021-10-01T08:09:20.000000Z', time: '1999-01-01T09:00:00.000000Z' },
      { id: 2, part: '2021-10-01T08:09:20.000000Z', time: '2000-01-01T09:00:00.000000Z' },
      { id: 3, part: '1969-01-01T00:00:00.000000Z', time: '1969-01-01T00:00:00.000000Z' },
      { id: 4, part: null, time: null },
    ]);
    const types = await queryRows(`SELECT column_name, column_type FROM (DESCRIBE ${liveRowsSql(snapshot)})`);
    expect(types).toEqual([
      { column_name: 'id', column_type: 'INTEGER' },
      { column_name: 'part', column_type: 'TIMESTAMP WITH TIME ZONE' },
      { column_name: 'time', column_type: 'TIMESTAMP WITH TIME ZONE' },
    ]);
    // Filters on the partition column work on the typed value.
    const filtered = await readRows(snapshot, { columns: ['id'], where: `"part" = TIMESTAMPTZ '2021-10-01 08:09:20+00'`, orderBy: '"id"' });
    expect(filtered).toEqual([{ id: 1 }, { id: 2 }]);
  });
});

describe('data-reader-timestamp_ntz: reader features (timestampNtz supported)', () => {
  const table = fixture('data-reader-timestamp_ntz');
  const ts1 = '2021-11-18T02:30:00.123456';
  const ts2 = '2013-07-05T17:01:00.123456';

  it('passes the protocol gate and reads the 9 rows as naive timestamps, microseconds intact', async () => {
    const snapshot = await loadSnapshot(table);
    expect(snapshot.protocol).toEqual({
      minReaderVersion: 3,
      minWriterVersion: 7,
      readerFeatures: ['timestampNtz'],
      writerFeatures: ['timestampNtz'],
    });
    expect(await readRows(snapshot, { orderBy: '"id"' })).toEqual([
      { id: 0, tsNtz: ts1, tsNtzPartition: ts1 },
      { id: 1, tsNtz: ts2, tsNtzPartition: ts1 },
      { id: 2, tsNtz: null, tsNtzPartition: ts1 },
      { id: 3, tsNtz: ts1, tsNtzPartition: ts2 },
      { id: 4, tsNtz: ts2, tsNtzPartition: ts2 },
      { id: 5, tsNtz: null, tsNtzPartition: ts2 },
      { id: 6, tsNtz: ts1, tsNtzPartition: null },
      { id: 7, tsNtz: ts2, tsNtzPartition: null },
      { id: 8, tsNtz: null, tsNtzPartition: null },
    ]);
    expect(rowCountFromStats(snapshot.files)).toBe(9);
  });

  it('reads v0 (table created, no files) as zero rows with the right columns', async () => {
    const snapshot = await loadSnapshot(table, { version: 0 });
    expect(snapshot.files).toEqual([]);
    expect(await readRows(snapshot)).toEqual([]);
    const types = await queryRows(`SELECT column_name, column_type FROM (DESCRIBE ${liveRowsSql(snapshot)})`);
    expect(types).toEqual([
      { column_name: 'id', column_type: 'INTEGER' },
      { column_name: 'tsNtz', column_type: 'TIMESTAMP' },
      { column_name: 'tsNtzPartition', column_type: 'TIMESTAMP' },
    ]);
  });
});

describe('table-with-dv-small and the protocol gate', () => {
  const table = fixture('table-with-dv-small');

  it('refuses a table with deletion vectors at every version, naming the feature', async () => {
    for (const version of [0, 1, undefined]) {
      const attempt = loadSnapshot(table, version === undefined ? {} : { version });
      await expect(attempt).rejects.toBeInstanceOf(UnsupportedDeltaFeatureError);
      await expect(attempt).rejects.toMatchObject({ features: ['deletionVectors'] });
      await expect(attempt).rejects.toThrow(/reader features \[deletionVectors\]/);
    }
  });

  it('refuses unsupported reader versions, features and column mapping; accepts what it implements', () => {
    const dir = '/tables/t';
    const accept = (protocol: Parameters<typeof assertReadableProtocol>[0], configuration: Record<string, string> = {}) =>
      expect(() => assertReadableProtocol(protocol, configuration, dir)).not.toThrow();
    const refuse = (
      protocol: Parameters<typeof assertReadableProtocol>[0],
      configuration: Record<string, string>,
      features: string[],
    ) => {
      expect(() => assertReadableProtocol(protocol, configuration, dir)).toThrow(UnsupportedDeltaFeatureError);
      try {
        assertReadableProtocol(protocol, configuration, dir);
      } catch (error) {
        expect((error as UnsupportedDeltaFeatureError).features).toEqual(features);
      }
    };
    accept({ minReaderVersion: 1, minWriterVersion: 2 });
    accept({ minReaderVersion: 2, minWriterVersion: 5 }, { 'delta.columnMapping.mode': 'none' });
    accept({ minReaderVersion: 3, minWriterVersion: 7, readerFeatures: ['timestampNtz', 'vacuumProtocolCheck'] });
    refuse({ minReaderVersion: 4, minWriterVersion: 7 }, {}, ['minReaderVersion=4']);
    refuse({ minReaderVersion: 3, minWriterVersion: 7, readerFeatures: ['columnMapping'] }, {}, ['columnMapping']);
    refuse({ minReaderVersion: 3, minWriterVersion: 7, readerFeatures: ['timestampNtz', 'v2Checkpoint'] }, {}, ['v2Checkpoint']);
    refuse({ minReaderVersion: 2, minWriterVersion: 5 }, { 'delta.columnMapping.mode': 'name' }, ['columnMapping']);
    refuse({ minReaderVersion: 1, minWriterVersion: 2 }, { 'delta.columnMapping.mode': 'id' }, ['columnMapping']);
  });
});

describe('broken and unusual logs (copies of the fixtures in a temp folder)', () => {
  it('refuses a log with a missing commit after the checkpoint, but still reads the versions before the gap', async () => {
    const table = await copyTable('basic-with-inserts-deletes-checkpoint', (relative) => relative === commitName(11));
    const latest = loadSnapshot(table);
    await expect(latest).rejects.toBeInstanceOf(DeltaLogError);
    await expect(latest).rejects.toThrow(/not contiguous: commit 11 is missing between checkpoint 10 and version 13/);
    expect(await columnValues(await loadSnapshot(table, { version: 10 }), 'id')).toHaveLength(35);
  });

  it('refuses a log with a missing commit and no checkpoint', async () => {
    const table = await copyTable('simple_table', (relative) => relative === commitName(2));
    await expect(loadSnapshot(table)).rejects.toThrow(/not contiguous: commit 2 is missing between commit 0 and version 4/);
    await expect(loadSnapshot(table, { version: 3 })).rejects.toBeInstanceOf(DeltaLogError);
    expect(await columnValues(await loadSnapshot(table, { version: 1 }), 'id')).toEqual(range(0, 19));
  });

  it('refuses a version that was cleaned up and is not covered by a checkpoint', async () => {
    const table = await copyTable(
      'basic-with-inserts-deletes-checkpoint',
      (relative) => /^_delta_log\/0{19}[0-4]\.json$/.test(relative),
    );
    expect(rowCountFromStats((await loadSnapshot(table)).files)).toBe(41); // still fine from the checkpoint
    const old = loadSnapshot(table, { version: 7 });
    await expect(old).rejects.toBeInstanceOf(DeltaVersionNotFoundError);
    await expect(old).rejects.toThrow(/commit 0 is gone \(oldest commit is 5\)/);
  });

  it('works without _last_checkpoint, and with a wrong or garbled one', async () => {
    const withoutHint = await copyTable('basic-with-inserts-deletes-checkpoint', (relative) => relative === '_delta_log/_last_checkpoint');
    const snapshot = await loadSnapshot(withoutHint);
    expect(snapshot.checkpointVersion).toBe(10);
    expect(await columnValues(snapshot, 'id')).toHaveLength(41);

    const wrongHint = await copyTable('basic-with-inserts-deletes-checkpoint');
    await writeFile(path.join(wrongHint, '_delta_log', '_last_checkpoint'), '{"version":7,"size":13}');
    const fromWrongHint = await loadSnapshot(wrongHint);
    expect(fromWrongHint.checkpointVersion).toBe(10);
    expect(fromWrongHint.warnings).toEqual([expect.stringMatching(/_last_checkpoint names version 7/)]);
    expect(await columnValues(fromWrongHint, 'id')).toHaveLength(41);

    const garbledHint = await copyTable('delta-0.2.0');
    await writeFile(path.join(garbledHint, '_delta_log', '_last_checkpoint'), '{"versi');
    const fromGarbled = await loadSnapshot(garbledHint);
    expect(fromGarbled.checkpointVersion).toBe(3);
    expect(fromGarbled.txns).toEqual(new Map([['e4a20b59-dd0e-4c50-b074-e8ae4786df30', 0n]]));
  });

  it('falls back to replaying JSON when the checkpoint is unreadable, and refuses when that is impossible', async () => {
    const checkpoint = '_delta_log/00000000000000000010.checkpoint.parquet';
    const table = await copyTable('basic-with-inserts-deletes-checkpoint');
    await writeFile(path.join(table, checkpoint), 'PAR1 this is not a parquet file');
    const snapshot = await loadSnapshot(table);
    expect(snapshot.checkpointVersion).toBeNull();
    expect(snapshot.warnings).toEqual([expect.stringMatching(/checkpoint 10 could not be read/)]);
    expect(await columnValues(snapshot, 'id')).toEqual((await columnValues(await loadSnapshot(fixture('basic-with-inserts-deletes-checkpoint')), 'id')));

    const noWayBack = await copyTable('basic-with-inserts-deletes-checkpoint', (relative) => relative === commitName(3));
    await writeFile(path.join(noWayBack, checkpoint), 'garbage');
    await expect(loadSnapshot(noWayBack)).rejects.toThrow(/commit 3 is missing between commit 0 and version 13 \(.*checkpoint 10 could not be read/);
  });

  it('reads a multi-part checkpoint, and skips one whose parts are not all there', async () => {
    const classic = '_delta_log/00000000000000000010.checkpoint.parquet';
    const source = quoteLiteral(path.join(fixture('basic-with-inserts-deletes-checkpoint'), classic));
    const part = (table: string, n: number) =>
      quoteLiteral(path.join(table, '_delta_log', `00000000000000000010.checkpoint.000000000${n}.0000000002.parquet`));

    const table = await copyTable('basic-with-inserts-deletes-checkpoint', (relative) => relative === classic);
    await runSql(`COPY (SELECT * FROM read_parquet(${source}) LIMIT 7) TO ${part(table, 1)} (FORMAT parquet)`);
    await runSql(`COPY (SELECT * FROM read_parquet(${source}) OFFSET 7) TO ${part(table, 2)} (FORMAT parquet)`);
    const snapshot = await loadSnapshot(table);
    expect(snapshot.checkpointVersion).toBe(10);
    expect(snapshot.warnings).toEqual([]);
    expect(await columnValues(snapshot, 'id')).toHaveLength(41);

    const incomplete = await copyTable('basic-with-inserts-deletes-checkpoint', (relative) => relative === classic);
    await runSql(`COPY (SELECT * FROM read_parquet(${source}) LIMIT 7) TO ${part(incomplete, 1)} (FORMAT parquet)`);
    const fromJson = await loadSnapshot(incomplete);
    expect(fromJson.checkpointVersion).toBeNull();
    expect(fromJson.warnings).toContainEqual(expect.stringMatching(/multi-part checkpoint 10 is missing parts/));
    expect(await columnValues(fromJson, 'id')).toHaveLength(41);
  });

  it('refuses a schema with a data type it cannot read', async () => {
    const table = await mkdtemp(path.join(scratchDir, 'variant-'));
    await mkdir(path.join(table, '_delta_log'));
    const schemaString = JSON.stringify({ type: 'struct', fields: [{ name: 'v', type: 'variant', nullable: true, metadata: {} }] });
    await writeFile(
      path.join(table, commitName(0)),
      [
        { protocol: { minReaderVersion: 1, minWriterVersion: 2 } },
        { metaData: { id: 'x', format: { provider: 'parquet', options: {} }, schemaString, partitionColumns: [], configuration: {} } },
      ]
        .map((action) => JSON.stringify(action))
        .join('\n'),
    );
    const attempt = loadSnapshot(table);
    await expect(attempt).rejects.toBeInstanceOf(UnsupportedDeltaFeatureError);
    await expect(attempt).rejects.toThrow(/unsupported Delta data type "variant"/);
  });

  it('refuses malformed commit JSON, unknown versions and folders that are not Delta tables', async () => {
    const table = await copyTable('simple_table', (relative) => relative === commitName(3));
    await writeFile(path.join(table, commitName(3)), '{"commitInfo":{}}\n{"add":{"path":"x.parquet",\n');
    await expect(loadSnapshot(table)).rejects.toThrow(/commit 3 line 2 is not valid JSON/);

    await expect(loadSnapshot(fixture('simple_table'), { version: 5 })).rejects.toBeInstanceOf(DeltaVersionNotFoundError);
    await expect(loadSnapshot(fixture('simple_table'), { version: 5 })).rejects.toThrow(/latest version is 4/);
    await expect(loadSnapshot(scratchDir)).rejects.toThrow(/_delta_log does not exist: not a Delta table/);
  });

  it('reports live files that are missing on disk', async () => {
    const table = await copyTable('simple_table', (relative) => relative.startsWith('part-00001-7891c33d'));
    const snapshot = await loadSnapshot(table);
    await expect(verifyLiveFiles(snapshot)).rejects.toThrow(/1 unreadable live file\(s\): part-00001-7891c33d.*ENOENT/);
  });
});

describe('change-feed current state (a table written here: DuckDB Parquet + hand-written log)', () => {
  let table: string;
  const appId = 'lakets-test-stock_ticks';

  const schemaString = JSON.stringify({
    type: 'struct',
    fields: [
      ['tick_id', 'long'],
      ['symbol', 'string'],
      ['price', 'double'],
      ['ts', 'timestamp'],
      ['day', 'date'],
      ['_change_type', 'string'],
      ['_lsn', 'long'],
      ['_commit_timestamp', 'timestamp'],
    ].map(([name, type]) => ({ name, type, nullable: true, metadata: {} })),
  });

  type Event = [tickId: number, symbol: string | null, price: number | null, ts: string, changeType: string];

  /** Writes one Parquet file of change events (without the partition column `day`) and returns its add action. */
  async function writeEvents(relativePath: string, day: string, lsn: number, events: Event[]): Promise<object> {
    const file = path.join(table, relativePath);
    await mkdir(path.dirname(file), { recursive: true });
    const values = events
      .map(
        ([tickId, symbol, price, ts, changeType]) =>
          `(${tickId}, ${symbol === null ? 'NULL' : quoteLiteral(symbol)}, ${price ?? 'NULL'}, TIMESTAMPTZ ${quoteLiteral(ts)}, ${quoteLiteral(changeType)})`,
      )
      .join(',\n');
    await runSql(`COPY (
      SELECT CAST(tick_id AS BIGINT) AS tick_id, CAST(symbol AS VARCHAR) AS symbol, CAST(price AS DOUBLE) AS price, ts,
             _change_type, CAST(${lsn} AS BIGINT) AS _lsn, TIMESTAMPTZ '2024-01-02 12:00:00+00' + INTERVAL (${lsn}) SECOND AS _commit_timestamp
      FROM (VALUES ${values}) AS events(tick_id, symbol, price, ts, _change_type)
    ) TO ${quoteLiteral(file)} (FORMAT parquet)`);
    const ids = events.map(([tickId]) => tickId);
    return {
      add: {
        path: relativePath.split('/').map(encodeURIComponent).join('/'),
        partitionValues: { day },
        size: (await stat(file)).size,
        modificationTime: Date.now(),
        dataChange: true,
        stats: JSON.stringify({
          numRecords: events.length,
          minValues: { tick_id: Math.min(...ids), _lsn: lsn },
          maxValues: { tick_id: Math.max(...ids), _lsn: lsn },
          nullCount: { tick_id: 0, symbol: events.filter((event) => event[1] === null).length },
        }),
      },
    };
  }

  async function writeCommit(version: number, lines: (object | string)[]): Promise<void> {
    const text = lines.map((line) => (typeof line === 'string' ? line : JSON.stringify(line))).join('\n');
    await writeFile(path.join(table, commitName(version)), `${text}\n`, { flag: 'wx' });
  }

  const commitInfo = (operation: string) => ({ commitInfo: { timestamp: Date.now(), operation, engineInfo: 'lakets-test' } });
  const txn = (version: number | string) => `{"txn":{"appId":"${appId}","version":${version},"lastUpdated":${Date.now()}}}`;

  const t = {
    1: '2024-01-02 10:00:00.000001+00',
    2: '2024-01-02 10:00:01.000002+00',
    3: '2024-01-02 10:00:02+00',
    5: '2024-01-02 10:00:03+00',
    6: '2024-01-02 10:00:04+00',
    7: '2024-01-02 10:00:05+00',
    8: '2024-01-02 10:00:06+00',
    moved: '2024-01-03 09:00:00.5+00',
  };

  beforeAll(async () => {
    table = await mkdtemp(path.join(scratchDir, 'change-feed-'));
    await mkdir(path.join(table, '_delta_log'));
    await writeCommit(0, [
      commitInfo('CREATE TABLE'),
      { protocol: { minReaderVersion: 1, minWriterVersion: 2 } },
      {
        metaData: {
          id: 'f3a1c1de-5b7e-4c1b-9d0a-2b1b7c0e0001',
          format: { provider: 'parquet', options: {} },
          schemaString,
          partitionColumns: ['day'],
          configuration: {},
          createdTime: Date.now(),
        },
      },
    ]);
    // LSN 100: five inserts; tick 5 twice (identical rows), tick 8 with a NULL price.
    await writeCommit(1, [
      commitInfo('WRITE'),
      txn(100),
      await writeEvents('day=2024-01-02/part-00000-v1.parquet', '2024-01-02', 100, [
        [1, 'AAPL', 100.0, t[1], 'insert'],
        [2, 'AAPL', 101.0, t[2], 'insert'],
        [3, 'MSFT', 50.0, t[3], 'insert'],
        [5, 'DUP', 1.0, t[5], 'insert'],
        [5, 'DUP', 1.0, t[5], 'insert'],
        [8, 'NUL', null, t[8], 'insert'],
      ]),
    ]);
    // LSN 200: an update of 2, a delete of 3, one of the two 5s deleted, 6 inserted and updated in the
    // same transaction, 7 inserted twice (a duplicate that stays, NULL symbol).
    await writeCommit(2, [
      commitInfo('WRITE'),
      txn(200),
      await writeEvents('day=2024-01-02/part-00000-v2.parquet', '2024-01-02', 200, [
        [2, 'AAPL', 101.0, t[2], 'update_preimage'],
        [2, 'AAPL', 101.5, t[2], 'update_postimage'],
        [3, 'MSFT', 50.0, t[3], 'delete'],
        [5, 'DUP', 1.0, t[5], 'delete'],
        [6, 'IBM', 10.0, t[6], 'insert'],
        [6, 'IBM', 10.0, t[6], 'update_preimage'],
        [6, 'IBM', 11.0, t[6], 'update_postimage'],
        [7, null, 2.0, t[7], 'insert'],
        [7, null, 2.0, t[7], 'insert'],
      ]),
    ]);
    // LSN 300, beyond 2^53 on purpose: tick 1 moves to the next day (pre-image and post-image land in
    // different partitions) and tick 8 (NULL price) is deleted.
    await writeCommit(3, [
      commitInfo('WRITE'),
      txn('9007199254740993'),
      await writeEvents('day=2024-01-02/part-00000-v3.parquet', '2024-01-02', 300, [
        [1, 'AAPL', 100.0, t[1], 'update_preimage'],
        [8, 'NUL', null, t[8], 'delete'],
      ]),
      await writeEvents('day=2024-01-03/part-00000-v3.parquet', '2024-01-03', 300, [
        [1, 'AAPL', 100.25, t.moved, 'update_postimage'],
      ]),
    ]);
  });

  const columns = ['tick_id', 'symbol', 'price', 'ts', 'day'];
  const row = (tickId: number, symbol: string | null, price: number | null, ts: string, day: string) => ({
    tick_id: BigInt(tickId),
    symbol,
    price,
    ts,
    day,
  });

  it('reads the raw feed with every event, the partition column typed, and the txn version exact', async () => {
    const snapshot = await loadSnapshot(table);
    expect(snapshot.version).toBe(3);
    expect(snapshot.files).toHaveLength(4);
    expect(snapshot.txns).toEqual(new Map([[appId, 9007199254740993n]]));
    expect((await loadSnapshot(table, { version: 2 })).txns).toEqual(new Map([[appId, 200n]]));
    expect(rowCountFromStats(snapshot.files)).toBe(18);
    await verifyLiveFiles(snapshot);
    const events = await readRows(snapshot, { orderBy: '"_lsn", "tick_id", "_change_type"' });
    expect(events).toHaveLength(18);
    expect(events[0]).toEqual({
      ...row(1, 'AAPL', 100, '2024-01-02T10:00:00.000001Z', '2024-01-02'),
      _change_type: 'insert',
      _lsn: 100n,
      _commit_timestamp: '2024-01-02T12:01:40.000000Z',
    });
  });

  it('computes the current state: inserts and post-images minus deletes and pre-images, duplicates kept', async () => {
    const snapshot = await loadSnapshot(table);
    expect(await readChangeFeedCurrentState(snapshot, { orderBy: '"tick_id", "ts"' })).toEqual([
      row(1, 'AAPL', 100.25, '2024-01-03T09:00:00.500000Z', '2024-01-03'),
      row(2, 'AAPL', 101.5, '2024-01-02T10:00:01.000002Z', '2024-01-02'),
      row(5, 'DUP', 1, '2024-01-02T10:00:03.000000Z', '2024-01-02'),
      row(6, 'IBM', 11, '2024-01-02T10:00:04.000000Z', '2024-01-02'),
      row(7, null, 2, '2024-01-02T10:00:05.000000Z', '2024-01-02'),
      row(7, null, 2, '2024-01-02T10:00:05.000000Z', '2024-01-02'),
    ]);
  });

  it('gives the state as of an LSN, or at an older table version', async () => {
    const snapshot = await loadSnapshot(table);
    const asOf100 = await readChangeFeedCurrentState(snapshot, { where: '"_lsn" <= 100', orderBy: '"tick_id"' });
    expect(asOf100.map((r) => Number(r['tick_id']))).toEqual([1, 2, 3, 5, 5, 8]);
    expect(asOf100.at(-1)).toEqual(row(8, 'NUL', null, '2024-01-02T10:00:06.000000Z', '2024-01-02'));
    const atVersion1 = await readChangeFeedCurrentState(await loadSnapshot(table, { version: 1 }), { orderBy: '"tick_id"' });
    expect(atVersion1).toEqual(asOf100);
    expect(await readChangeFeedCurrentState(await loadSnapshot(table, { version: 0 }))).toEqual([]);
  });

  it('lets callers aggregate the current state in DuckDB (count and checksum over a range)', async () => {
    const snapshot = await loadSnapshot(table);
    const sql = changeFeedCurrentStateSql(snapshot);
    const [all] = await queryRows(`SELECT count(*) AS n, sum("tick_id") AS ids FROM (${sql}) AS s`);
    expect(all).toEqual({ n: 6n, ids: 28n });
    // A range filter before matching gives the same answer as filtering the state afterwards.
    const day = `"day" = DATE '2024-01-02'`;
    const [pre] = await queryRows(`SELECT count(*) AS n FROM (${changeFeedCurrentStateSql(snapshot, { where: day })}) AS s`);
    const [post] = await queryRows(`SELECT count(*) AS n FROM (${sql}) AS s WHERE ${day}`);
    expect(pre).toEqual({ n: 5n });
    expect(post).toEqual(pre);
  });

  it('with key columns, fails closed when a key has more than one live row', async () => {
    const snapshot = await loadSnapshot(table);
    await expect(readChangeFeedCurrentState(snapshot, { keyColumns: ['tick_id'] })).rejects.toThrow(
      /more than one row for key 7/,
    );
    const keyed = await readChangeFeedCurrentState(snapshot, {
      keyColumns: ['tick_id'],
      where: '"tick_id" <> 7',
      orderBy: '"tick_id"',
    });
    expect(keyed.map((r) => Number(r['tick_id']))).toEqual([1, 2, 5, 6]);
    expect(() => changeFeedCurrentStateSql(snapshot, { keyColumns: ['nope'] })).toThrow(/not one of the table columns/);
    expect(changeFeedCurrentStateSql(snapshot, { tableColumns: columns })).toContain('GROUP BY "tick_id", "symbol", "price", "ts", "day"');
  });

  it('refuses an unknown _change_type instead of skipping it', async () => {
    const copy = await mkdtemp(path.join(scratchDir, 'change-feed-bad-'));
    await mkdir(path.join(copy, '_delta_log'));
    for (const version of [0, 1]) await copyFile(path.join(table, commitName(version)), path.join(copy, commitName(version)));
    // Same file name as the add action of commit 1, different content (its size no longer matches the
    // log, which a read does not check; verifyLiveFiles would).
    await mkdir(path.join(copy, 'day=2024-01-02'));
    await runSql(`COPY (
      SELECT 1::BIGINT AS tick_id, 'X' AS symbol, 1.0::DOUBLE AS price, TIMESTAMPTZ '2024-01-02 00:00:00+00' AS ts,
             'upsert' AS _change_type, 100::BIGINT AS _lsn, TIMESTAMPTZ '2024-01-02 00:00:00+00' AS _commit_timestamp
    ) TO ${quoteLiteral(path.join(copy, 'day=2024-01-02', 'part-00000-v1.parquet'))} (FORMAT parquet)`);
    const snapshot = await loadSnapshot(copy);
    await expect(readChangeFeedCurrentState(snapshot)).rejects.toThrow(/unknown _change_type in change feed: upsert/);
  });

  it('refuses a table that is not a change feed', async () => {
    const snapshot = await loadSnapshot(fixture('simple_table'));
    expect(() => changeFeedCurrentStateSql(snapshot)).toThrow(/not a change feed/);
  });
});
