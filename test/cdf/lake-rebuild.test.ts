// A lost lake is rebuilt, not silently refilled: when the lake is emptied while the source had been
// synced (its shadow purged, chunks dropped), the sync writes the rows in Postgres as a snapshot
// commit and streams on — exactly once through kill -9 before and after that commit —, reports the
// history of the chunks dropped before as missing (lake.missingHistory, never invented in `ticks`),
// and the durability gate works again for resident chunks. A lake replaced by an older copy of
// itself is refused. Real processes on a local lake (the Azurite lifecycle test runs it on a store).

import { cpSync, existsSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lakeTableDir, loadConfig, type Config } from '../../src/config.ts';
import { loadSnapshot } from '../../src/lake/snapshot.ts';
import { readCommitsAfter } from '../../src/lake/log.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { retention } from '../../src/lifecycle/retention.ts';
import { rollupRefresh } from '../../src/lifecycle/rollup-refresh.ts';
import { tiering } from '../../src/lifecycle/tiering.ts';
import { gql } from '../helpers/api.ts';
import { useTestContext, waitFor } from '../helpers/context.ts';
import {
  cdfState,
  expectCrashed,
  expectLakeHoldsSource,
  insertTicks,
  runJob,
  startSyncProcess,
  stopSyncProcess,
  waitForSyncedAll,
} from '../helpers/lake-lifecycle.ts';
import type { Spawned } from '../helpers/processes.ts';

const ctx = useTestContext('lake_rebuild');
let dataDir: string;
let config: Config;
let client: pg.Client;
let child: Spawned | undefined;

const OLD = Date.UTC(2026, 5, 1, 10, 0, 0);
const minute = (n: number) => new Date(OLD + n * 60_000);

async function chunk(start: Date) {
  const { rows } = await client.query<{ status: string; generation: number; lake_lost_at: Date | null; last_gate_result: string | null }>(
    `SELECT status, generation, lake_lost_at, last_gate_result FROM lakets.chunks WHERE range_start = $1 ORDER BY generation DESC LIMIT 1`,
    [start],
  );
  return rows[0]!;
}

beforeAll(async () => {
  dataDir = ctx.tempDir('rebuild');
  config = loadConfig({ LAKETS_DATA_DIR: dataDir });
  client = new pg.Client({ connectionString: ctx.db.url });
  await client.connect();
  await client.query(`SELECT lakets.add_tiered_retention_policy('stock_ticks', '1 minute', '2 minutes', 'tick_id')`);
  for (let m = 0; m < 4; m++) await insertTicks(client, minute(m), 50);
  await runJob(ctx.db.url, partitionManager, config);
});

afterAll(async () => {
  if (child && child.child.exitCode === null && child.child.signalCode === null) {
    child.child.kill('SIGKILL');
    await child.exited;
  }
  await client?.end();
});

describe('a lost lake', () => {
  const env = () => ({ LAKETS_DATA_DIR: dataDir });
  const tableDir = () => lakeTableDir(dataDir);

  it('is rebuilt from the rows in Postgres, exactly once through crashes, with the lost history reported', async () => {
    // The lake holds four chunks' rows, then they are dropped: their rows live only there.
    child = startSyncProcess(ctx.db.url, env());
    await waitForSyncedAll(client, child);
    await runJob(ctx.db.url, tiering, config);
    await runJob(ctx.db.url, rollupRefresh, config);
    expect(await runJob(ctx.db.url, retention, config)).toMatchObject({ dropped: 4 });
    await stopSyncProcess(child);

    // The lake is lost; the source changes meanwhile (new, corrected and deleted ticks; a new old chunk).
    rmSync(path.join(dataDir, 'lake'), { recursive: true, force: true });
    await insertTicks(client, new Date(Date.now() - 30_000), 100, 'MSFT');
    await insertTicks(client, minute(20), 30, 'NVDA');
    await client.query(`UPDATE stock_ticks SET price = price + 1 WHERE symbol = 'MSFT' AND tick_id % 5 = 0`);
    await client.query(`DELETE FROM stock_ticks WHERE symbol = 'MSFT' AND tick_id % 7 = 0`);

    // Killed while writing the rebuild's files: nothing committed, the next start rebuilds again.
    child = startSyncProcess(ctx.db.url, env(), { at: 'parquet-written', afterCommits: 0 });
    await expectCrashed(child, 'parquet-written');
    expect(existsSync(path.join(tableDir(), '_delta_log', '00000000000000000000.json'))).toBe(false);
    // Killed after the rebuild's commit, before its shadow rows were purged.
    child = startSyncProcess(ctx.db.url, env(), { at: 'commit-visible-before-ack', afterCommits: 0 });
    await expectCrashed(child, 'commit-visible-before-ack');
    const rebuilt = await loadSnapshot(tableDir());
    expect(rebuilt.version).toBe(0);
    const [commit] = await readCommitsAfter(tableDir(), -1);
    expect(commit!.actions.filter((a) => a.kind === 'add').every((a) => a.kind === 'add' && a.file.dataChange)).toBe(true);
    expect(Number((await client.query(`SELECT count(*) AS n FROM lakets_cdf._shadow_stock_ticks`)).rows[0].n)).toBeGreaterThan(0);

    // More changes, then a clean start: the interrupted rebuild is finished, the stream continues.
    await insertTicks(client, new Date(Date.now() - 20_000), 20, 'MSFT');
    child = startSyncProcess(ctx.db.url, env());
    await waitForSyncedAll(client, child);
    await expectLakeHoldsSource(client, tableDir());

    // The history of the four dropped chunks is reported as missing, in the state and in the API.
    const state = await cdfState(client);
    expect(state?.detail['missingHistory']).toMatchObject({ chunks: 4, rows: 200 });
    for (let m = 0; m < 4; m++) expect((await chunk(minute(m))).lake_lost_at).not.toBeNull();
    const api = await ctx.startApi({ lake: config.lake.store });
    const res = await gql(api.url, `{ lake { state missingHistory { chunks rows from to rebuiltAt } } }`);
    expect(res.errors).toBeUndefined();
    expect(res.data.lake).toMatchObject({
      state: 'STREAMING',
      missingHistory: { chunks: 4, rows: 200, from: minute(0).toISOString(), to: minute(4).toISOString() },
    });
    // Never invented: the lost range has no ticks, from anywhere.
    const lost = await gql(api.url, `{ ticks(symbol: "AAPL", from: "${minute(0).toISOString()}", to: "${minute(4).toISOString()}") { tickId } }`);
    expect(lost.errors).toBeUndefined();
    expect(lost.data.ticks).toEqual([]);
  });

  it('lets the gate tier and drop resident chunks again, late ticks into a lost range included', async () => {
    await runJob(ctx.db.url, partitionManager, config); // the old NVDA ticks wait in the default partition
    await runJob(ctx.db.url, tiering, config);
    expect((await chunk(minute(20))).status).toBe('tiered');
    // A late tick re-creates a dropped (and lost) range: the lake must hold it, not the lost generation.
    await insertTicks(client, minute(1), 1, 'TSLA');
    await runJob(ctx.db.url, partitionManager, config);
    expect(await chunk(minute(1))).toMatchObject({ status: 'active', generation: 2, lake_lost_at: null });
    await runJob(ctx.db.url, rollupRefresh, config);
    await runJob(ctx.db.url, tiering, config);
    expect((await chunk(minute(1))).status).toBe('tiered');
    await runJob(ctx.db.url, rollupRefresh, config);
    await runJob(ctx.db.url, retention, config);
    expect((await chunk(minute(20))).status).toBe('dropped');
    expect((await chunk(minute(1))).status).toBe('dropped');
    await waitForSyncedAll(client, child);
    await expectLakeHoldsSource(client, tableDir(), 31);
  });

  it('refuses a lake replaced by an older copy of itself, and leaves tiering closed', async () => {
    await stopSyncProcess(child!);
    const backup = path.join(dataDir, 'lake-backup');
    cpSync(path.join(dataDir, 'lake'), backup, { recursive: true });
    child = startSyncProcess(ctx.db.url, env());
    await insertTicks(client, new Date(Date.now() - 10_000), 10, 'MSFT');
    await waitForSyncedAll(client, child);
    await stopSyncProcess(child);
    rmSync(path.join(dataDir, 'lake'), { recursive: true, force: true });
    renameSync(backup, path.join(dataDir, 'lake'));

    child = startSyncProcess(ctx.db.url, env());
    expect(await child.exited, child.output()).toBe(1);
    const state = await cdfState(client);
    expect(state?.state).toBe('ERROR');
    expect(String(state?.detail['error'])).toMatch(/is at version \d+, but this sync already committed version \d+: it was replaced by an older copy/);
    await insertTicks(client, minute(30), 5, 'NVDA');
    await runJob(ctx.db.url, partitionManager, config);
    await runJob(ctx.db.url, tiering, config);
    await waitFor(async () => (await chunk(minute(30))).last_gate_result !== null, 5_000, 'the gate to look at the chunk');
    expect((await chunk(minute(30))).status).toBe('active');
  });
});
