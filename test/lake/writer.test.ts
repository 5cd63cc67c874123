// The Delta writer (src/lake/writer.ts) against our own reader and against DuckDB reading the live
// files directly: rows with microsecond timestamps, stats, day partitions, checkpoints, put-if-absent
// commits and the source binding. Real files on disk, nothing mocked.

import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeFeedColumns, changeFeedPartition, sourceBinding } from '../../src/lake/change-feed-table.ts';
import { readChangeFeedCurrentState } from '../../src/lake/change-feed.ts';
import { queryRows } from '../../src/lake/duckdb.ts';
import { liveRowsSql, readRows } from '../../src/lake/reader.ts';
import { loadSnapshot } from '../../src/lake/snapshot.ts';
import { quoteLiteral } from '../../src/lake/sql.ts';
import { DeltaCommitConflictError, DeltaTableMismatchError } from '../../src/lake/writer-errors.ts';
import { commitFileName, DeltaTableWriter, type DeltaWriterOptions, type LakeRow } from '../../src/lake/writer.ts';

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(path.join(os.tmpdir(), 'lakets-lake-writer-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const columns = changeFeedColumns([
  { name: 'time', pgType: 'timestamp with time zone' },
  { name: 'symbol', pgType: 'text' },
  { name: 'price', pgType: 'double precision' },
  { name: 'volume', pgType: 'double precision' },
  { name: 'tick_id', pgType: 'bigint' },
]);
const binding = sourceBinding({ systemIdentifier: '7301', database: 'lakets', slot: 'lakets_cdf_lakets_stock_ticks', table: 'public.stock_ticks' });

async function newTable(name: string, extra: Partial<DeltaWriterOptions> = {}): Promise<DeltaWriterOptions> {
  return {
    tableDir: path.join(await mkdtemp(path.join(scratch, `${name}-`)), 'stock_ticks'),
    columns,
    partition: changeFeedPartition('time'),
    configuration: binding,
    tableName: 'stock_ticks',
    ...extra,
  };
}

/** A tick event as text; `micros` makes the fraction distinct per row. */
function event(day: string, micros: number, id: number, type = 'insert', lsn = 1000n, price = 100 + id / 3): LakeRow {
  return [`${day} 12:34:56.${String(micros).padStart(6, '0')}+00`, id % 2 ? 'AAPL' : 'BTC-USD', String(price), '0.25', String(id), type, lsn.toString(), '2024-03-02 00:00:00.000007+00'];
}

describe('commits', () => {
  it('are read back by our reader and by DuckDB over the live files, microseconds and stats included', async () => {
    const options = await newTable('basic');
    const writer = await DeltaTableWriter.open(options);
    expect(writer.version).toBe(-1);
    const first = [event('2024-03-01', 1, 1), event('2024-03-01', 999_999, 2), event('2024-03-02', 123_457, 3)];
    const r0 = await writer.commit({ rows: first, txn: { appId: 'app', version: 1000n } });
    expect(r0).toMatchObject({ version: 0, files: 2, rows: 3 });
    // Row 2 corrected (pre-image, post-image), row 1 deleted.
    const second = [
      event('2024-03-01', 999_999, 2, 'update_preimage', 2000n),
      event('2024-03-01', 999_999, 2, 'update_postimage', 2000n, 42.5),
      event('2024-03-01', 1, 1, 'delete', 2000n),
    ];
    await writer.commit({ rows: second, txn: { appId: 'app', version: 2000n } });

    const snapshot = await loadSnapshot(options.tableDir);
    expect(snapshot.version).toBe(1);
    expect(snapshot.protocol).toMatchObject({ minReaderVersion: 1, minWriterVersion: 2 });
    expect(snapshot.metaData.partitionColumns).toEqual(['date']);
    expect(snapshot.metaData.configuration).toMatchObject(binding);
    expect(snapshot.txns.get('app')).toBe(2000n);
    expect(snapshot.files).toHaveLength(3);
    expect(snapshot.metaData.schema.fields.map((f) => `${f.name}:${String(f.type)}`)).toEqual([
      'time:timestamp', 'symbol:string', 'price:double', 'volume:double', 'tick_id:long',
      '_change_type:string', '_lsn:long', '_commit_timestamp:timestamp', 'date:string',
    ]);

    const rows = await readRows(snapshot, { orderBy: '_lsn, tick_id, _change_type' });
    expect(rows).toHaveLength(6);
    expect(rows[0]).toEqual({
      time: '2024-03-01T12:34:56.000001Z', symbol: 'AAPL', price: 100 + 1 / 3, volume: 0.25, tick_id: 1n,
      _change_type: 'insert', _lsn: 1000n, _commit_timestamp: '2024-03-02T00:00:00.000007Z', date: '2024-03-01',
    });
    expect(rows.map((r) => r['time'])).toContain('2024-03-01T12:34:56.999999Z');

    // Stats: numRecords, min/max (microseconds kept), null counts.
    const day1 = snapshot.files.filter((f) => f.partitionValues['date'] === '2024-03-01');
    const firstFile = day1.find((f) => f.stats?.numRecords === 2);
    expect(firstFile?.stats).toMatchObject({
      numRecords: 2,
      minValues: { time: '2024-03-01T12:34:56.000001Z', tick_id: 1, _lsn: 1000, symbol: 'AAPL' },
      maxValues: { time: '2024-03-01T12:34:56.999999Z', tick_id: 2, symbol: 'BTC-USD' },
      nullCount: { time: 0, price: 0, tick_id: 0 },
    });
    expect(firstFile?.path).toMatch(/^date=2024-03-01\/part-.*\.parquet$/);

    // DuckDB straight over the live files named by the log, and over the day folders (hive names).
    const live = snapshot.files.map((f) => quoteLiteral(f.localPath)).join(', ');
    const direct = await queryRows(`SELECT count(*) AS n, sum(tick_id) AS s, max("time") AS t FROM read_parquet([${live}])`);
    expect(direct[0]).toEqual({ n: 6n, s: 11n, t: '2024-03-02T12:34:56.123457Z' });
    const hive = await queryRows(
      `SELECT "date", count(*) AS n FROM read_parquet(${quoteLiteral(`${options.tableDir}/date=*/*.parquet`)}, hive_partitioning = true)
        GROUP BY 1 ORDER BY 1`,
    );
    expect(hive).toEqual([{ date: '2024-03-01', n: 5n }, { date: '2024-03-02', n: 1n }]);

    // The current-state view of the change feed.
    const state = await readChangeFeedCurrentState(snapshot, { orderBy: 'tick_id' });
    expect(state.map((r) => [r['tick_id'], r['price'], r['time']])).toEqual([
      [2n, 42.5, '2024-03-01T12:34:56.999999Z'],
      [3n, 101, '2024-03-02T12:34:56.123457Z'],
    ]);
  });

  it('puts every row in the UTC day of its time, across midnight, before 1970, with offsets and nulls', async () => {
    const options = await newTable('days');
    const writer = await DeltaTableWriter.open(options);
    const row = (time: string | null, id: number) => [time, 'AAPL', '1.5', '2', String(id), 'insert', '10', '2024-03-02 00:00:00+00'];
    // Natively converted (every time in the plain UTC form).
    const plain = [
      row('2024-03-01 23:59:59.999999+00', 1), row('2024-03-02 00:00:00+00', 2),
      row('1969-12-31 23:59:59.999999+00', 3), row('1970-01-01 00:00:00+00', 4), row('1900-01-01 00:00:00.5+00', 5),
    ];
    await writer.commit({ rows: plain, txn: { appId: 'app', version: 10n } });
    // Cast by DuckDB (an offset and a null in the batch).
    const mixed = [row('2024-03-02 01:30:00+02', 6), row(null, 7), row('2024-03-02 00:00:00.000001+00', 8)];
    await writer.commit({ rows: mixed, txn: { appId: 'app', version: 20n } });

    const snapshot = await loadSnapshot(options.tableDir);
    const byDay = new Map<string | null, number>();
    for (const f of snapshot.files) byDay.set(f.partitionValues['date'] ?? null, (byDay.get(f.partitionValues['date'] ?? null) ?? 0) + (f.stats?.numRecords ?? 0));
    expect(Object.fromEntries([...byDay].map(([k, v]) => [String(k), v]))).toEqual({
      '2024-03-01': 2, // ids 1 and 6 (01:30+02 is 23:30 UTC the day before)
      '2024-03-02': 2,
      '1969-12-31': 1,
      '1970-01-01': 1,
      '1900-01-01': 1,
      null: 1,
    });
    const rows = await readRows(snapshot, { orderBy: 'tick_id' });
    expect(rows.map((r) => [r['tick_id'], r['time'], r['date']])).toEqual([
      [1n, '2024-03-01T23:59:59.999999Z', '2024-03-01'],
      [2n, '2024-03-02T00:00:00.000000Z', '2024-03-02'],
      [3n, '1969-12-31T23:59:59.999999Z', '1969-12-31'],
      [4n, '1970-01-01T00:00:00.000000Z', '1970-01-01'],
      [5n, '1900-01-01T00:00:00.500000Z', '1900-01-01'],
      [6n, '2024-03-01T23:30:00.000000Z', '2024-03-01'],
      [7n, null, null],
      [8n, '2024-03-02T00:00:00.000001Z', '2024-03-02'],
    ]);
  });

  it('writes a commit with no rows (txn only) and refuses a txn version that does not advance', async () => {
    const options = await newTable('empty');
    const writer = await DeltaTableWriter.open(options);
    await writer.commit({ rows: [], txn: { appId: 'app', version: 5n } });
    const snapshot = await loadSnapshot(options.tableDir);
    expect(snapshot.files).toHaveLength(0);
    expect(snapshot.txns.get('app')).toBe(5n);
    expect(await readRows(snapshot)).toEqual([]);
    await expect(writer.commit({ rows: [event('2024-03-01', 1, 1)], txn: { appId: 'app', version: 5n } })).rejects.toThrow(/not above/);
  });
});

describe('checkpoints', () => {
  it('are written every N commits, point _last_checkpoint at themselves and give the same state', async () => {
    const options = await newTable('checkpoint', { checkpointInterval: 3 });
    const writer = await DeltaTableWriter.open(options);
    const big = (1n << 60n) + 12345n; // beyond 2^53: must survive the checkpoint exactly
    // Versions 0-4 and 6-8 hold 50 rows each; version 5 is a txn-only commit of another appId.
    for (let n = 0; n < 8; n++) {
      const rows = Array.from({ length: 50 }, (_, i) => event(i % 2 ? '2024-03-01' : '2024-03-02', n * 1000 + i, n * 100 + i));
      await writer.commit({ rows, txn: { appId: 'app', version: n === 7 ? big + 1n : big - 10n + BigInt(n) } });
      if (n === 4) await writer.commit({ rows: [], txn: { appId: 'other', version: 77n } });
    }
    const logDir = path.join(options.tableDir, '_delta_log');
    const names = (await readdir(logDir)).sort();
    expect(names.filter((n) => n.endsWith('.checkpoint.parquet'))).toEqual([
      '00000000000000000003.checkpoint.parquet',
      '00000000000000000006.checkpoint.parquet',
    ]);
    expect(JSON.parse(await readFile(path.join(logDir, '_last_checkpoint'), 'utf8'))).toMatchObject({ version: 6 });

    const atCheckpoint = await loadSnapshot(options.tableDir, { version: 6 });
    expect(atCheckpoint.checkpointVersion).toBe(6);
    expect(atCheckpoint.warnings).toEqual([]);
    // The same version replayed from the JSON commits alone (checkpoints removed in a copy).
    const copy = path.join(scratch, 'checkpoint-copy');
    await cp(options.tableDir, copy, { recursive: true });
    for (const n of names.filter((x) => x.includes('checkpoint'))) await rm(path.join(copy, '_delta_log', n));
    const replayed = await loadSnapshot(copy, { version: 6 });
    expect(replayed.checkpointVersion).toBeNull();
    expect(atCheckpoint.files.map((f) => [f.path, f.size, f.stats?.numRecords, f.partitionValues['date']])).toEqual(
      replayed.files.map((f) => [f.path, f.size, f.stats?.numRecords, f.partitionValues['date']]),
    );
    expect([...atCheckpoint.txns]).toEqual([...replayed.txns]);
    expect(atCheckpoint.txns.get('other')).toBe(77n);
    expect(atCheckpoint.metaData.configuration).toEqual(replayed.metaData.configuration);
    expect(atCheckpoint.metaData.schemaString).toBe(replayed.metaData.schemaString);

    const latest = await loadSnapshot(options.tableDir);
    expect(latest.version).toBe(8);
    expect(latest.checkpointVersion).toBe(6);
    expect(latest.txns.get('app')).toBe(big + 1n);
    const count = await queryRows(`SELECT count(*) AS n FROM (${liveRowsSql(latest)}) AS t`);
    expect(count[0]?.['n']).toBe(400n);

    // A writer reopened from the checkpointed log continues where it was.
    const reopened = await DeltaTableWriter.open(options);
    expect(reopened.version).toBe(8);
    expect(reopened.numRecords).toBe(400);
    expect(reopened.txnVersion('app')).toBe(big + 1n);
  });
});

describe('atomic commits', () => {
  it('put-if-absent: a second writer of the same version fails and leaves the first commit intact', async () => {
    const options = await newTable('conflict');
    const a = await DeltaTableWriter.open(options);
    await a.commit({ rows: [event('2024-03-01', 1, 1)], txn: { appId: 'app', version: 10n } });
    const b = await DeltaTableWriter.open(options);
    const c = await DeltaTableWriter.open(options);
    await b.commit({ rows: [event('2024-03-01', 2, 2)], txn: { appId: 'app', version: 20n } });
    const error = await c.commit({ rows: [event('2024-03-01', 3, 3)], txn: { appId: 'app', version: 30n } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeltaCommitConflictError);
    expect((error as DeltaCommitConflictError).version).toBe(1);
    // The loser is closed; the log holds the winner's commit only.
    await expect(c.commit({ rows: [] })).rejects.toThrow(/closed/);
    const snapshot = await loadSnapshot(options.tableDir);
    expect(snapshot.version).toBe(1);
    expect(snapshot.txns.get('app')).toBe(20n);
    expect((await readRows(snapshot, { columns: ['tick_id'], orderBy: 'tick_id' })).map((r) => r['tick_id'])).toEqual([1n, 2n]);
    const logNames = await readdir(path.join(options.tableDir, '_delta_log'));
    expect(logNames.filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('ignores and cleans up a temp commit left by a crash', async () => {
    const options = await newTable('temp');
    const writer = await DeltaTableWriter.open(options);
    await writer.commit({ rows: [event('2024-03-01', 1, 1)], txn: { appId: 'app', version: 10n } });
    const logDir = path.join(options.tableDir, '_delta_log');
    const stale = path.join(logDir, `.${commitFileName(1)}.0000-crashed.tmp`);
    await writeFile(stale, '{"add":{"path":"nowhere.parquet","size":1,"partitionValues":{},"modificationTime":0,"dataChange":true}}\n');
    const snapshot = await loadSnapshot(options.tableDir);
    expect(snapshot.version).toBe(0);
    const reopened = await DeltaTableWriter.open(options);
    expect(await readdir(logDir)).not.toContain(path.basename(stale));
    await reopened.commit({ rows: [event('2024-03-01', 2, 2)], txn: { appId: 'app', version: 11n } });
    expect((await loadSnapshot(options.tableDir)).files).toHaveLength(2);
  });
});

describe('source binding', () => {
  it('refuses to append to a table bound to another source (cluster, database or slot)', async () => {
    const options = await newTable('binding');
    const writer = await DeltaTableWriter.open(options);
    await writer.commit({ rows: [event('2024-03-01', 1, 1)], txn: { appId: 'app', version: 10n } });
    const other = sourceBinding({ systemIdentifier: '9999', database: 'lakets', slot: 'lakets_cdf_lakets_stock_ticks', table: 'public.stock_ticks' });
    const error = await DeltaTableWriter.open({ ...options, configuration: other }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeltaTableMismatchError);
    expect((error as Error).message).toMatch(/bound to another source.*lakets\.source\.systemIdentifier/);
    const otherSlot = { ...binding, 'lakets.source.slot': 'lakets_cdf_elsewhere_stock_ticks' };
    await expect(DeltaTableWriter.open({ ...options, configuration: otherSlot })).rejects.toThrow(/lakets\.source\.slot/);
    // Another schema is refused too.
    await expect(DeltaTableWriter.open({ ...options, columns: columns.slice(1) })).rejects.toThrow(/schema/);
    expect((await loadSnapshot(options.tableDir)).version).toBe(0);
  });
});
