// Listing the log from a version (what loading a snapshot from its checkpoint and a writer catching up
// both do) on a local folder and on Azurite, whose listing cannot start after a name: the names are
// listed block by block of 100 versions, across block boundaries, and nothing before the version.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCommitsAfter } from '../../src/lake/log.ts';
import { listDeltaLog } from '../../src/lake/log-listing.ts';
import { loadSnapshot } from '../../src/lake/snapshot.ts';
import { DeltaTableWriter } from '../../src/lake/writer.ts';
import { lakeStoreFixture, tickEvent, tickWriterOptions, type LakeStoreFixture } from '../helpers/lake-tables.ts';

describe.each(['file', 'az'] as const)('the log listed from a version on %s', (kind) => {
  let store: LakeStoreFixture;
  beforeAll(async () => {
    store = await lakeStoreFixture(kind, 'log-listing');
  });
  afterAll(async () => {
    await store?.close();
  });

  it('holds every name of that version and later, across blocks of 100 versions, and none before', async () => {
    const table = store.table('blocks');
    const writer = await DeltaTableWriter.openTable(table, { ...tickWriterOptions, checkpointInterval: 95 });
    for (let v = 0; v <= 201; v++) await writer.commit({ rows: [tickEvent('2024-03-01', v, v + 1)], txn: { appId: 'app', version: BigInt(v + 1) } });

    const from95 = await listDeltaLog(table, { fromVersion: 95 });
    expect([...from95.commits.keys()].sort((a, b) => a - b)).toEqual(Array.from({ length: 201 - 95 + 1 }, (_, i) => 95 + i));
    expect(from95.checkpoints.map((c) => c.version)).toEqual([190, 95]);
    const from199 = await listDeltaLog(table, { fromVersion: 199 });
    expect([...from199.commits.keys()].sort((a, b) => a - b)).toEqual([199, 200, 201]);
    expect((await readCommitsAfter(table, 198)).map((c) => c.version)).toEqual([199, 200, 201]);
    expect(await readCommitsAfter(table, 201)).toEqual([]);

    const snapshot = await loadSnapshot(table);
    expect(snapshot).toMatchObject({ version: 201, checkpointVersion: 190 });
    expect(snapshot.files).toHaveLength(202);
  });
});
