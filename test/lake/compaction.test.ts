// Compaction (src/lake/compaction.ts) on a local folder and on Azurite: the small files of closed days
// become one file each, with the same change events (inserts, corrections, deletes) and stats, in one
// dataChange-false commit; older versions stay readable; a writer whose version a compaction took
// catches up and checkpoints the compacted table correctly; a compaction steps over the sync's
// commits and gives up (deleting its new files) when another compaction took its inputs.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compactTable } from '../../src/lake/compaction.ts';
import { readChangeFeedCurrentState } from '../../src/lake/change-feed.ts';
import { readCommitsAfter } from '../../src/lake/log.ts';
import { verifyLiveFiles } from '../../src/lake/reader.ts';
import { loadSnapshot, type DeltaSnapshot } from '../../src/lake/snapshot.ts';
import type { LakeTable } from '../../src/lake/table.ts';
import { DeltaCommitConflictError } from '../../src/lake/writer-errors.ts';
import { DeltaTableWriter, type LakeRow } from '../../src/lake/writer.ts';
import { eventLines, lakeStoreFixture, tickEvent, tickPartition, tickWriterOptions, type LakeStoreFixture } from '../helpers/lake-tables.ts';

const CLOSED = ['2024-03-01', '2024-03-02'];
const OPEN = '2024-03-03';

/** Ten small commits over two closed days and an open one, with corrections and deletes. */
async function smallCommits(table: LakeTable, checkpointInterval = 0): Promise<DeltaTableWriter> {
  const writer = await DeltaTableWriter.openTable(table, { ...tickWriterOptions, checkpointInterval });
  let id = 0;
  for (let c = 0; c < 10; c++) {
    const rows: LakeRow[] = [];
    for (const day of [...CLOSED, OPEN]) for (let i = 0; i < 20; i++) rows.push(tickEvent(day, c * 100 + i, ++id, 'insert', BigInt(1000 + c)));
    if (c === 6) {
      // A correction of tick 2 and a delete of tick 1 (both on the first closed day).
      rows.push(tickEvent(CLOSED[0]!, 1, 2, 'update_preimage', 1006n, 100.5), tickEvent(CLOSED[0]!, 1, 2, 'update_postimage', 1006n, 7.25));
      rows.push(tickEvent(CLOSED[0]!, 0, 1, 'delete', 1006n, 100.25));
    }
    await writer.commit({ rows, txn: { appId: 'app', version: BigInt(1000 + c) } });
  }
  return writer;
}

function filesPerDay(snapshot: DeltaSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const file of snapshot.files) out[String(file.partitionValues['date'])] = (out[String(file.partitionValues['date'])] ?? 0) + 1;
  return out;
}

async function currentState(snapshot: DeltaSnapshot): Promise<string[]> {
  const rows = await readChangeFeedCurrentState(snapshot, { keyColumns: ['tick_id'], orderBy: 'tick_id' });
  return rows.map((r) => `${String(r['time'])}|${String(r['price'])}|${String(r['tick_id'])}`);
}

describe.each(['file', 'az'] as const)('compaction on %s', (kind) => {
  let store: LakeStoreFixture;
  beforeAll(async () => {
    store = await lakeStoreFixture(kind, 'compaction');
  });
  afterAll(async () => {
    await store?.close();
  });

  it('rewrites the small files of each closed day into one, with the same events and state; the open day is left alone', async () => {
    const table = store.table('rewrite');
    await smallCommits(table);
    const before = await loadSnapshot(table);
    expect(filesPerDay(before)).toEqual({ [CLOSED[0]!]: 10, [CLOSED[1]!]: 10, [OPEN]: 10 });
    const events = await eventLines(before);
    const state = await currentState(before);
    expect(state).toHaveLength(599);

    const result = await compactTable(table, { partition: tickPartition, closedBefore: OPEN });
    expect(result).toMatchObject({ version: 10, days: CLOSED, filesRemoved: 20, filesAdded: 2, rows: 403 });
    expect(result.gaveUp).toBeUndefined();

    const after = await loadSnapshot(table);
    expect(after.version).toBe(10);
    expect(filesPerDay(after)).toEqual({ [CLOSED[0]!]: 1, [CLOSED[1]!]: 1, [OPEN]: 10 });
    expect(await eventLines(after)).toEqual(events);
    expect(await currentState(after)).toEqual(state);
    await verifyLiveFiles(after);
    // The new files: dataChange false, stats of their own rows (count, time range).
    const compacted = after.files.filter((f) => f.partitionValues['date'] === CLOSED[0]);
    expect(compacted[0]).toMatchObject({ dataChange: false, stats: { numRecords: 203 } });
    expect(compacted[0]!.stats?.minValues?.['time']).toBe(`${CLOSED[0]}T00:00:00.000001Z`);
    expect(compacted[0]!.stats?.maxValues?.['time']).toBe(`${CLOSED[0]}T00:15:19.000560Z`);
    // The commit: removes and adds, all dataChange false, no txn (a change-feed reader skips it).
    const [commit] = await readCommitsAfter(table, 9);
    expect(commit!.actions.map((a) => a.kind).sort()).toEqual([...Array(2).fill('add'), ...Array(20).fill('remove')]);
    expect(commit!.actions.every((a) => (a.kind === 'add' ? !a.file.dataChange : a.kind === 'remove' ? !a.tombstone.dataChange : false))).toBe(true);
    // Older versions stay readable: the replaced files are still in the store.
    const old = await loadSnapshot(table, { version: 9 });
    expect(await eventLines(old)).toEqual(events);
    await verifyLiveFiles(old);

    // Nothing left to do: no commit.
    expect(await compactTable(table, { partition: tickPartition, closedBefore: OPEN })).toMatchObject({ filesRemoved: 0 });
    expect((await loadSnapshot(table)).version).toBe(10);
  });

  it('packs by size and stays within its bounds per run, converging over runs', async () => {
    const table = store.table('bounds');
    await smallCommits(table);
    const small = Math.max(...(await loadSnapshot(table)).files.map((f) => f.size));
    // Bins of at most 3 files' worth, at most 8 input files per run.
    const first = await compactTable(table, { partition: tickPartition, closedBefore: OPEN, targetFileBytes: small * 3 + 1, maxInputFilesPerRun: 8 });
    expect(first.filesRemoved).toBeLessThanOrEqual(8);
    expect(first.filesRemoved).toBeGreaterThanOrEqual(4);
    const events = await eventLines(await loadSnapshot(table));
    for (let run = 0; run < 10; run++) await compactTable(table, { partition: tickPartition, closedBefore: OPEN, maxInputFilesPerRun: 8 });
    const after = await loadSnapshot(table);
    expect(filesPerDay(after)).toEqual({ [CLOSED[0]!]: 1, [CLOSED[1]!]: 1, [OPEN]: 10 });
    expect(await eventLines(after)).toEqual(events);
  });

  it('lets the sync’s writer catch up with a compaction that took its version; its checkpoint names the compacted files only', async () => {
    const table = store.table('catch-up');
    const writer = await smallCommits(table, 12);
    const events = await eventLines(await loadSnapshot(table));
    const compacted = await compactTable(table, { partition: tickPartition, closedBefore: OPEN });
    expect(compacted.version).toBe(10);

    // The writer still thinks version 9 is the latest: its commit finds 10 taken by the compaction,
    // applies it and becomes 11; the next one is 12, with a checkpoint.
    const more = [tickEvent(OPEN, 5000, 9001, 'insert', 2000n), tickEvent(CLOSED[1]!, 5000, 9002, 'insert', 2000n)];
    expect((await writer.commit({ rows: more, txn: { appId: 'app', version: 2000n } })).version).toBe(11);
    const last = [tickEvent(OPEN, 5001, 9003, 'insert', 2001n)];
    expect(await writer.commit({ rows: last, txn: { appId: 'app', version: 2001n } })).toMatchObject({ version: 12, checkpointed: true });
    expect(writer.numRecords).toBe(403 + 200 + 3);

    const fromCheckpoint = await loadSnapshot(table);
    expect(fromCheckpoint.checkpointVersion).toBe(12);
    // Had the writer kept its old view, the checkpoint would bring the replaced files back (every event twice).
    expect(filesPerDay(fromCheckpoint)).toEqual({ [CLOSED[0]!]: 1, [CLOSED[1]!]: 2, [OPEN]: 12 });
    // The checkpoint remembers the replaced files as tombstones (within the retention period).
    expect(fromCheckpoint.tombstones).toHaveLength(20);
    expect((await eventLines(fromCheckpoint)).length).toBe(events.length + 3);
    expect(fromCheckpoint.txns.get('app')).toBe(2001n);
  });

  it('a writer still stops on a commit that changes data', async () => {
    const table = store.table('real-conflict');
    const a = await smallCommits(table);
    const b = await DeltaTableWriter.openTable(table, tickWriterOptions);
    await b.commit({ rows: [tickEvent(OPEN, 1, 8001)], txn: { appId: 'app', version: 3000n } });
    await expect(a.commit({ rows: [tickEvent(OPEN, 2, 8002)], txn: { appId: 'app', version: 3001n } })).rejects.toBeInstanceOf(DeltaCommitConflictError);
  });

  it('steps over the sync’s commits made while it rewrote, and gives up when another compaction took its inputs', async () => {
    const table = store.table('race');
    const writer = await smallCommits(table);
    const stepped = await compactTable(table, {
      partition: tickPartition,
      closedBefore: OPEN,
      beforeCommit: async () => {
        await writer.commit({ rows: [tickEvent(OPEN, 7000, 7001)], txn: { appId: 'app', version: 4000n } });
        await writer.commit({ rows: [tickEvent(OPEN, 7001, 7002)], txn: { appId: 'app', version: 4001n } });
      },
    });
    expect(stepped.version).toBe(12);
    expect(filesPerDay(await loadSnapshot(table))).toEqual({ [CLOSED[0]!]: 1, [CLOSED[1]!]: 1, [OPEN]: 12 });

    // Two compactions of the same files: the one that commits second gives up and deletes its new file.
    await writer.commit({ rows: [tickEvent(CLOSED[0]!, 9000, 7003)], txn: { appId: 'app', version: 4002n } });
    const before = await loadSnapshot(table);
    let winner: Awaited<ReturnType<typeof compactTable>> | undefined;
    const loser = await compactTable(table, {
      partition: tickPartition,
      closedBefore: OPEN,
      beforeCommit: async () => {
        winner = await compactTable(table, { partition: tickPartition, closedBefore: OPEN });
      },
    });
    expect(winner).toMatchObject({ version: 14, filesRemoved: 2, filesAdded: 1 });
    expect(loser.version).toBeUndefined();
    expect(loser.gaveUp).toMatch(/^commit 14 removed date=2024-03-01\/part-.*, an input of this compaction$/);
    const after = await loadSnapshot(table);
    expect(after.version).toBe(14);
    expect(await eventLines(after)).toEqual(await eventLines(before));
    const dataFiles = (await table.store.list('date=2024-03-01/')).filter((o) => o.key.endsWith('.parquet')).map((o) => o.key);
    // The day's original files, the first compaction's, the late one, the winner's; not the loser's.
    expect(dataFiles).toHaveLength(10 + 1 + 1 + 1);
  });
});
