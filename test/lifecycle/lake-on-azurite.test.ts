// The whole lake lifecycle on an object store: Azurite (the Azure Storage emulator, a real server
// started here, which enforces create-if-absent) holds the lake, `az://lake/e2e`. The sync runs as its
// own process and is killed (kill -9) at every crash point of a commit, then restarted; chunks are
// tiered and dropped through the gate reading the store; `ticks` serves dropped history from it;
// lake_compact runs while the sync streams; lake_vacuum deletes what the retention lets go; the lake
// is emptied and rebuilt. After each step the lake equals the source exactly with every event once,
// and an independent reader (the README's DuckDB snippet over the blobs the Azure SDK downloads)
// agrees. No lake folder appears on this machine.

import { existsSync, mkdtempSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CDF_CRASH_POINTS, loadConfig, type Config } from '../../src/config.ts';
import { loadSnapshot } from '../../src/lake/snapshot.ts';
import { openLakeTable, type LakeTable } from '../../src/lake/table.ts';
import { vacuumTable } from '../../src/lake/vacuum.ts';
import { lakeCompact } from '../../src/lifecycle/lake-compaction.ts';
import { lakeVacuum } from '../../src/lifecycle/lake-vacuum.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { retention } from '../../src/lifecycle/retention.ts';
import { rollupRefresh } from '../../src/lifecycle/rollup-refresh.ts';
import { tiering } from '../../src/lifecycle/tiering.ts';
import { gql } from '../helpers/api.ts';
import { useTestContext } from '../helpers/context.ts';
import { lakeTicks } from '../helpers/lake.ts';
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
import { deleteBlobs, downloadBlobs, startAzurite, type StoreServer } from '../helpers/object-stores.ts';
import type { Spawned } from '../helpers/processes.ts';
import { runReadmeSnippet } from '../helpers/readme-snippet.ts';

const ctx = useTestContext('lake_azurite');
let azurite: StoreServer;
let env: Record<string, string>;
let config: Config;
let client: pg.Client;
let lake: LakeTable;
let child: Spawned | undefined;
let dataDir: string;

// Two closed days of history (compacted later), written a minute at a time, and today's ticks.
const DAY_A = Date.UTC(2026, 5, 1, 10, 0, 0);
const DAY_B = Date.UTC(2026, 5, 2, 10, 0, 0);
const SYMBOLS = ['AAPL', 'MSFT', 'NVDA'];

/** One round of writes: ticks into a minute of each old day and now, a correction and a delete. */
async function writeRound(round: number): Promise<void> {
  const symbol = SYMBOLS[round % SYMBOLS.length]!;
  await insertTicks(client, new Date(DAY_A + round * 60_000), 40, symbol);
  await insertTicks(client, new Date(DAY_B + round * 60_000), 40, symbol);
  await insertTicks(client, new Date(Date.now() - 5_000), 20, symbol);
  await client.query(`UPDATE stock_ticks SET price = price + 0.5 WHERE tick_id % 13 = $1`, [round % 13]);
  await client.query(`DELETE FROM stock_ticks WHERE tick_id % 17 = $1`, [round % 17]);
}

let round = 0;

/** Writes rounds until the sync process dies (its crash point) or `rounds` are written. */
async function writeWhileRunning(rounds = 60): Promise<void> {
  for (let i = 0; i < rounds && child!.child.exitCode === null && child!.child.signalCode === null; i++) {
    await writeRound(round++);
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

/** The README's snippet over the lake's blobs, downloaded with the Azure SDK. */
async function independentRead(): Promise<Record<string, number>> {
  const mirror = mkdtempSync(path.join(dataDir, 'mirror-'));
  await downloadBlobs(azurite, 'lake', 'e2e/stock_ticks', mirror);
  const rows = await runReadmeSnippet(mirror);
  return Object.fromEntries(rows.map((r) => [r.symbol, r.ticks]));
}

/** Ticks per symbol in the lake's current state, by our reader. */
async function ourRead(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await lakeTicks(lake)).lines) {
    const symbol = line.split('|')[1]!;
    out[symbol] = (out[symbol] ?? 0) + 1;
  }
  return out;
}

async function droppedRows(): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`SELECT coalesce(sum(row_count), 0)::text AS n FROM lakets.chunks WHERE status = 'dropped' AND lake_lost_at IS NULL`);
  return Number(rows[0]!.n);
}

beforeAll(async () => {
  azurite = await startAzurite();
  await azurite.createBucket('lake');
  dataDir = ctx.tempDir('azurite-lake');
  env = { ...azurite.env, LAKETS_DATA_DIR: dataDir, LAKETS_LAKE_URL: 'az://lake/e2e' };
  config = loadConfig(env);
  lake = openLakeTable(config.lake.store, 'stock_ticks');
  client = new pg.Client({ connectionString: ctx.db.url });
  await client.connect();
  await client.query(`SELECT lakets.add_tiered_retention_policy('stock_ticks', '1 minute', '2 minutes', 'tick_id')`);
  await runJob(ctx.db.url, partitionManager, config);
});

afterAll(async () => {
  if (child && child.child.exitCode === null && child.child.signalCode === null) {
    child.child.kill('SIGKILL');
    await child.exited;
  }
  await client?.end();
  await lake?.close();
  await azurite?.stop();
});

describe('the lake on Azure Blob Storage (Azurite)', () => {
  it('syncs exactly once through kill -9 at every crash point of a commit', async () => {
    await writeRound(round++);
    for (const point of CDF_CRASH_POINTS) {
      child = startSyncProcess(ctx.db.url, env, { at: point, afterCommits: 2 });
      await writeWhileRunning();
      await expectCrashed(child, point);
      const crashedAt = await loadSnapshot(lake);
      if (point === 'parquet-written' || point === 'commit-temp-written') {
        // The dead commit's data files are in the store, named by no commit.
        const parquet = (await lake.store.list('date=')).filter((o) => o.key.endsWith('.parquet'));
        expect(parquet.length).toBeGreaterThan(crashedAt.files.length);
      }
    }
    await writeRound(round++);
    child = startSyncProcess(ctx.db.url, env);
    await waitForSyncedAll(client, child);
    await expectLakeHoldsSource(client, lake);
    expect(await independentRead()).toEqual(await ourRead());
    expect(existsSync(path.join(dataDir, 'lake'))).toBe(false);
  });

  it('tiers and drops chunks through the gate reading the store, and serves their ticks from it', async () => {
    // The old minutes wait in the default partition; the manager moves a bounded number per run.
    for (let run = 0; run < 50 && Number((await runJob(ctx.db.url, partitionManager, config))['rowsMoved']) > 0; run++);
    const { rows: before } = await client.query<{ tick_id: string }>(
      `SELECT tick_id::text FROM stock_ticks WHERE symbol = 'AAPL' AND time >= $1 AND time < $2 ORDER BY time, tick_id`,
      [new Date(DAY_A), new Date(DAY_A + 86_400_000)],
    );
    expect(before.length).toBeGreaterThan(0);
    await runJob(ctx.db.url, tiering, config);
    await runJob(ctx.db.url, rollupRefresh, config);
    const dropped = await runJob(ctx.db.url, retention, config);
    expect(dropped['dropped']).toBeGreaterThan(0);
    const { rows: left } = await client.query(`SELECT chunk_name, status FROM lakets.chunks WHERE range_end < now() - interval '1 day' AND status <> 'dropped'`);
    expect(left).toEqual([]);
    expect(await droppedRows()).toBeGreaterThan(0);
    await waitForSyncedAll(client, child);
    await expectLakeHoldsSource(client, lake, await droppedRows());

    const api = await ctx.startApi({ lake: config.lake.store });
    const res = await gql(api.url, `query($f: DateTime, $t: DateTime) { ticks(symbol: "AAPL", from: $f, to: $t, limit: 5000) { tickId source } }`, {
      f: new Date(DAY_A).toISOString(),
      t: new Date(DAY_A + 86_400_000).toISOString(),
    });
    expect(res.errors).toBeUndefined();
    expect(res.data.ticks.map((t: { tickId: string }) => t.tickId)).toEqual(before.map((r) => r.tick_id));
    expect(res.data.ticks.every((t: { source: string }) => t.source === 'LAKE')).toBe(true);
  });

  it('compacts the closed days while the sync streams, and vacuums what the retention lets go', async () => {
    const filesPerDay = async () => {
      const out: Record<string, number> = {};
      for (const f of (await loadSnapshot(lake)).files) out[String(f.partitionValues['date'])] = (out[String(f.partitionValues['date'])] ?? 0) + 1;
      return out;
    };
    const before = await filesPerDay();
    expect(before['2026-06-01']).toBeGreaterThan(5);
    // The sync keeps committing while compaction rewrites: both commits land, neither is lost.
    const writing = writeWhileRunning(8);
    const compacted = await runJob(ctx.db.url, lakeCompact, config);
    await writing;
    const result = (compacted['tables'] as Record<string, { version?: number; filesRemoved: number; gaveUp?: string }>)['stock_ticks']!;
    expect(result.gaveUp).toBeUndefined();
    expect(result.version).toBeGreaterThan(0);
    // What the sync wrote into those days meanwhile is small again: the next run takes it too.
    await waitForSyncedAll(client, child);
    await runJob(ctx.db.url, lakeCompact, config);
    const after = await filesPerDay();
    expect(after['2026-06-01']).toBeLessThanOrEqual(2);
    expect(after['2026-06-02']).toBeLessThanOrEqual(2);
    await waitForSyncedAll(client, child);
    await expectLakeHoldsSource(client, lake, await droppedRows());
    expect(await independentRead()).toEqual(await ourRead());

    // Within the retention period nothing goes; past it the replaced files and the crashed commits' orphans do.
    expect(await runJob(ctx.db.url, lakeVacuum, config)).toMatchObject({ tables: { stock_ticks: { deleted: 0 } } });
    const vacuumed = await vacuumTable(lake, { retentionMs: config.lake.retentionMs, now: Date.now() + config.lake.retentionMs + 3_600_000 });
    expect(vacuumed.deleted).toBeGreaterThanOrEqual(result.filesRemoved);
    await waitForSyncedAll(client, child);
    await expectLakeHoldsSource(client, lake, await droppedRows());
    expect(await independentRead()).toEqual(await ourRead());
  });

  it('rebuilds an emptied lake from the rows in Postgres through a crash, and reports the history it lost', async () => {
    await stopSyncProcess(child!);
    const lostChunks = Number((await client.query(`SELECT count(*) AS n FROM lakets.chunks WHERE status = 'dropped'`)).rows[0].n);
    expect(await deleteBlobs(azurite, 'lake', 'e2e')).toBeGreaterThan(0);
    await writeRound(round++);
    child = startSyncProcess(ctx.db.url, env, { at: 'commit-visible-before-ack', afterCommits: 0 });
    await expectCrashed(child, 'commit-visible-before-ack');
    await writeRound(round++);
    child = startSyncProcess(ctx.db.url, env);
    await waitForSyncedAll(client, child);
    await expectLakeHoldsSource(client, lake);
    expect(await independentRead()).toEqual(await ourRead());
    expect((await cdfState(client))?.detail['missingHistory']).toMatchObject({ chunks: lostChunks });

    // The gate works again for the resident chunks.
    await runJob(ctx.db.url, partitionManager, config);
    await runJob(ctx.db.url, tiering, config);
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM lakets.chunks WHERE status = 'tiered'`);
    expect(Number(rows[0]!.n)).toBeGreaterThan(0);
    await stopSyncProcess(child);
    expect(existsSync(path.join(dataDir, 'lake'))).toBe(false);
  });
});
