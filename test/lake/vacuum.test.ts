// Vacuum (src/lake/vacuum.ts) on a local folder and on Azurite: files a compaction replaced stay
// while the retention period runs (older versions readable), then go; files no commit names go only
// once older than the retention (an upload whose commit is still to come is young); live files, the
// log and anything that is not ours stay. Ages are measured against a clock moved forward, so the
// retention of the test is the product's default.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LAKE_RETENTION } from '../../src/config.ts';
import { compactTable } from '../../src/lake/compaction.ts';
import { readRows, verifyLiveFiles } from '../../src/lake/reader.ts';
import { loadSnapshot } from '../../src/lake/snapshot.ts';
import { vacuumTable } from '../../src/lake/vacuum.ts';
import { DeltaTableWriter } from '../../src/lake/writer.ts';
import { eventLines, lakeStoreFixture, tickEvent, tickPartition, tickWriterOptions, type LakeStoreFixture } from '../helpers/lake-tables.ts';

const RETENTION_MS = 7 * 86_400_000;
const DAY = '2024-03-01';

describe.each(['file', 'az'] as const)('vacuum on %s', (kind) => {
  let store: LakeStoreFixture;
  beforeAll(async () => {
    store = await lakeStoreFixture(kind, 'vacuum');
  });
  afterAll(async () => {
    await store?.close();
  });

  it('keeps replaced files for the retention period, then deletes them; live files, the log and foreign files stay', async () => {
    expect(DEFAULT_LAKE_RETENTION).toBe('7 days');
    const table = store.table('replaced');
    const writer = await DeltaTableWriter.openTable(table, { ...tickWriterOptions, checkpointInterval: 4 });
    for (let c = 0; c < 6; c++) await writer.commit({ rows: [tickEvent(DAY, c, c + 1), tickEvent('2024-03-05', c, 100 + c)], txn: { appId: 'app', version: BigInt(c + 1) } });
    const compacted = await compactTable(table, { partition: tickPartition, closedBefore: '2024-03-05' });
    expect(compacted).toMatchObject({ version: 6, filesRemoved: 6, filesAdded: 1 });
    const events = await eventLines(await loadSnapshot(table));
    // Not ours: a file in a folder of another tool, and a note someone left.
    await table.store.write('_change_data/cdc-00000.parquet', 'not ours');
    await table.store.write(`date=${DAY}/README.txt`, 'not ours either');
    const logBefore = (await table.store.list('_delta_log/')).map((o) => o.key);

    // Within the retention period: nothing goes, the version before the compaction still reads.
    const now = await vacuumTable(table, { retentionMs: RETENTION_MS });
    expect(now).toMatchObject({ version: 6, deleted: 0, referenced: 13 });
    expect(await eventLines(await loadSnapshot(table, { version: 5 }))).toEqual(events);

    // Past it: the six replaced files go, nothing else.
    const later = await vacuumTable(table, { retentionMs: RETENTION_MS, now: Date.now() + RETENTION_MS + 3_600_000 });
    expect(later).toMatchObject({ deleted: 6, referenced: 7, remaining: 0 });
    const current = await loadSnapshot(table);
    await verifyLiveFiles(current);
    expect(await eventLines(current)).toEqual(events);
    expect(await table.store.stat('_change_data/cdc-00000.parquet')).toBeDefined();
    expect(await table.store.stat(`date=${DAY}/README.txt`)).toBeDefined();
    expect((await table.store.list('_delta_log/')).map((o) => o.key)).toEqual(logBefore);
    // The old version's files are gone from the store (a local copy a reader still has is no answer).
    for (const file of (await loadSnapshot(table, { version: 5 })).files.filter((f) => f.partitionValues['date'] === DAY)) {
      expect(await table.store.stat(file.key!)).toBeUndefined();
    }
    expect(await vacuumTable(table, { retentionMs: RETENTION_MS, now: Date.now() + RETENTION_MS + 3_600_000 })).toMatchObject({ deleted: 0 });
  });

  it('deletes files no commit names only once they are older than the retention period, a few per run', async () => {
    const table = store.table('orphans');
    const writer = await DeltaTableWriter.openTable(table, tickWriterOptions);
    await writer.commit({ rows: [tickEvent(DAY, 1, 1)], txn: { appId: 'app', version: 1n } });
    // Three uploads no commit names (a crashed commit, or one in flight), and a probe left by a crash.
    for (let i = 0; i < 3; i++) {
      const staged = await table.store.stage(`date=${DAY}/part-00000-orphan-${i}.c000.zstd.parquet`);
      writeFileSync(staged.localPath, `orphan ${i}`);
      await staged.publish();
    }
    await table.store.write('_delta_log/_probe/left-by-a-crash', 'probe');
    if (kind === 'file') {
      // A temp file of a local write that died before its rename.
      writeFileSync(path.join(table.store.localRoot!, `date=${DAY}`, '.part-00000-x.c000.zstd.parquet.0000.tmp'), 'partial');
    }
    const orphans = kind === 'file' ? 5 : 4;

    // Young: an upload may be a commit in flight, so it stays.
    expect(await vacuumTable(table, { retentionMs: RETENTION_MS })).toMatchObject({ deleted: 0, youngUnreferenced: orphans, referenced: 1 });
    const future = Date.now() + RETENTION_MS + 60_000;
    expect(await vacuumTable(table, { retentionMs: RETENTION_MS, now: future, maxDeletes: 2 })).toMatchObject({ deleted: 2, remaining: orphans - 2 });
    expect(await vacuumTable(table, { retentionMs: RETENTION_MS, now: future })).toMatchObject({ deleted: orphans - 2, remaining: 0, referenced: 1 });
    const keys = (await table.store.list('')).map((o) => o.key).filter((k) => !k.startsWith('_delta_log/'));
    expect(keys).toEqual([(await loadSnapshot(table)).files[0]!.key]);
    expect(await readRows(await loadSnapshot(table))).toHaveLength(1);
  });

  it('thins the checkpoints: the two newest and one an hour within the retention stay, every version stays readable', async () => {
    const table = store.table('checkpoints');
    const writer = await DeltaTableWriter.openTable(table, { ...tickWriterOptions, checkpointInterval: 2 });
    for (let c = 0; c < 13; c++) await writer.commit({ rows: [tickEvent(DAY, c, c + 1)], txn: { appId: 'app', version: BigInt(c + 1) } });
    const checkpoints = async () => (await table.store.list('_delta_log/')).map((o) => o.key).filter((k) => k.endsWith('.checkpoint.parquet')).map((k) => Number(k.slice(11, 31)));
    expect(await checkpoints()).toEqual([2, 4, 6, 8, 10, 12]);
    const versions = await Promise.all([3, 5, 9, 12].map(async (v) => (await readRows(await loadSnapshot(table, { version: v }))).length));

    // Written within the last hour: a reader may be on any of them.
    expect(await vacuumTable(table, { retentionMs: RETENTION_MS })).toMatchObject({ checkpointsDeleted: 0 });
    // Two hours later: all in one hour, which the two newest already cover.
    expect(await vacuumTable(table, { retentionMs: RETENTION_MS, now: Date.now() + 2 * 3_600_000 })).toMatchObject({ checkpointsDeleted: 4, deleted: 4 });
    expect(await checkpoints()).toEqual([10, 12]);
    expect(await Promise.all([3, 5, 9, 12].map(async (v) => (await readRows(await loadSnapshot(table, { version: v }))).length))).toEqual(versions);
    expect((await loadSnapshot(table)).checkpointVersion).toBe(12);
  });
});
