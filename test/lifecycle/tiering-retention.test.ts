import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { useTestContext } from '../helpers/context.ts';
import { gql } from '../helpers/api.ts';
import { fileLake, lakeTicks, sourceTicks } from '../helpers/lake.ts';
import { CdfSync } from '../../src/cdf/cdf-sync.ts';
import { parseLsn } from '../../src/lake/lsn.ts';
import { runJobOnce } from '../../src/scheduler/job.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { rollupRefresh } from '../../src/lifecycle/rollup-refresh.ts';
import { tiering } from '../../src/lifecycle/tiering.ts';
import { retention } from '../../src/lifecycle/retention.ts';
import { GATE_BATCH } from '../../src/lifecycle/durability-gate.ts';
import { lakeTableDir, loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';

const ctx = useTestContext('tiering');
let dataDir: string;
let sync: CdfSync | undefined;
const logger = createLogger('silent');
let config: ReturnType<typeof loadConfig>;

// Ranges well in the past: older than any threshold.
const OLD = Date.UTC(2026, 5, 1, 10, 0, 0);
const minute = (n: number) => new Date(OLD + n * 60_000);

async function startSync(): Promise<CdfSync> {
  const s = new CdfSync({ url: ctx.db.url, lake: fileLake(dataDir), batchMaxMs: 200, statusIntervalMs: 200, logger });
  await s.start();
  return s;
}

async function insert(client: pg.ClientBase | pg.Pool, at: Date, n: number, symbol = 'AAPL'): Promise<void> {
  await client.query(
    `INSERT INTO stock_ticks (time, symbol, price, volume)
     SELECT $1::timestamptz + (g || ' ms')::interval + interval '0.000123 s', $3, 100 + g, g FROM generate_series(1, $2) g`,
    [at, n, symbol],
  );
}

async function chunk(start: Date) {
  const { rows } = await ctx.db.query<{ id: string; status: string; chunk_name: string; last_gate_result: string | null; generation: number }>(
    `SELECT id, status, chunk_name, last_gate_result, generation FROM lakets.chunks
      WHERE range_start = $1 ORDER BY generation DESC LIMIT 1`,
    [start],
  );
  return rows[0]!;
}

async function run(job: typeof tiering) {
  const outcome = await runJobOnce(ctx.db.url, job, config, logger);
  if (outcome.status !== 'succeeded') throw new Error(`${job.name} ${outcome.status}: ${'error' in outcome ? outcome.error.message : ''}`);
  return outcome.result.detail as Record<string, unknown>;
}

beforeAll(async () => {
  dataDir = ctx.tempDir('tiering');
  config = loadConfig({ LAKETS_DATA_DIR: dataDir });
  await ctx.db.query(`SELECT lakets.add_tiered_retention_policy('stock_ticks', '1 minute', '2 minutes', 'tick_id')`);
  for (let m = 0; m < 4; m++) await insert(ctx.db.pool, minute(m), 50);
  await runJobOnce(ctx.db.url, partitionManager, config, logger); // moves them out of the default partition
});

afterAll(async () => {
  await sync?.stop();
});

describe('durability-gated tiering and retention', () => {
  it('defers every chunk while the sync is not running, and drops nothing', async () => {
    const detail = await run(tiering);
    expect(detail.tiered).toBe(0);
    expect((await chunk(minute(0))).last_gate_result).toMatch(/deferred: (no change-feed sync|sync is|lake has not caught up)/);
    expect((await run(retention)).dropped).toBe(0);
    const { rows } = await ctx.db.query(`SELECT count(*)::int AS n FROM lakets.chunks WHERE status <> 'active'`);
    expect(rows[0]!.n).toBe(0);
  });

  it('tiers a chunk once the lake provably holds all its rows, then drops it', async () => {
    sync = await startSync();
    const tiered = await run(tiering);
    expect(tiered.tiered).toBeGreaterThanOrEqual(4);
    expect((await chunk(minute(0))).status).toBe('tiered');
    // pending rollup buckets over the range are refreshed before any drop
    await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
    const dropped = await run(retention);
    expect(dropped.dropped).toBeGreaterThanOrEqual(4);
    const c = await chunk(minute(0));
    expect(c.status).toBe('dropped');
    const { rows } = await ctx.db.query(`SELECT to_regclass($1) AS r`, [c.chunk_name]);
    expect(rows[0]!.r).toBeNull();
    // every dropped row is in the lake
    const lake = await lakeTicks(lakeTableDir(config.dataDir));
    expect(lake.count).toBe(200);
  });

  it('serves dropped history from the lake through Query.ticks', async () => {
    const api = await ctx.startApi({ lake: config.lake.store });
    try {
      const res = await gql(api.url, `query($f: DateTime, $t: DateTime) { ticks(symbol: "AAPL", from: $f, to: $t, limit: 1000) { time epochMicros price tickId source } }`, {
        f: minute(0).toISOString(),
        t: minute(4).toISOString(),
      });
      expect(res.errors).toBeUndefined();
      expect(res.data.ticks).toHaveLength(200);
      expect(res.data.ticks.every((k: { source: string }) => k.source === 'LAKE')).toBe(true);
      expect(res.data.ticks[0].epochMicros % 1000).toBe(123); // microseconds survived Postgres -> Delta -> GraphQL
      const times = res.data.ticks.map((k: { epochMicros: number }) => k.epochMicros);
      expect(times).toEqual([...times].sort((a, b) => a - b));
    } finally {
      await api.close();
    }
    const pgOnly = await ctx.startApi();
    try {
      const res = await gql(pgOnly.url, `{ ticks(symbol: "AAPL", from: "${minute(0).toISOString()}", to: "${minute(4).toISOString()}") { tickId } }`);
      expect(res.data.ticks).toHaveLength(0); // no lake configured: only resident rows
    } finally {
      await pgOnly.close();
    }
  });

  it('re-creates a dropped range for late ticks as a new generation that goes through the lifecycle again', async () => {
    await insert(ctx.db.pool, minute(1), 7, 'MSFT');
    await runJobOnce(ctx.db.url, partitionManager, config, logger);
    const gen2 = await chunk(minute(1));
    expect(gen2).toMatchObject({ status: 'active', generation: 2 });
    await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
    await run(tiering);
    expect((await chunk(minute(1))).status).toBe('tiered'); // lake = 50 (generation 1) + 7
    await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
    await run(retention);
    expect((await chunk(minute(1))).status).toBe('dropped');
    expect((await lakeTicks(lakeTableDir(config.dataDir))).count).toBe(207);
  });

  it('sends a chunk written after tiering back to active', async () => {
    await insert(ctx.db.pool, minute(10), 20);
    await runJobOnce(ctx.db.url, partitionManager, config, logger);
    await run(tiering);
    expect((await chunk(minute(10))).status).toBe('tiered');
    await insert(ctx.db.pool, minute(10), 1, 'NVDA');
    expect((await chunk(minute(10))).status).toBe('active');
    await run(tiering);
    expect((await chunk(minute(10))).status).toBe('tiered');
  });

  it('never drops a chunk whose writer is still in flight; its rows reach the lake first', async () => {
    await insert(ctx.db.pool, minute(20), 30);
    await runJobOnce(ctx.db.url, partitionManager, config, logger);
    await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
    await run(tiering);
    expect((await chunk(minute(20))).status).toBe('tiered');

    // A transaction writes into the old chunk and stays open while others commit and the jobs run.
    const writer = new pg.Client({ connectionString: ctx.db.url });
    await writer.connect();
    await writer.query('BEGIN');
    await insert(writer, minute(20), 5, 'TSLA');
    for (let i = 0; i < 3; i++) await insert(ctx.db.pool, new Date(Date.now() - 1000), 10, 'JPM');
    await run(tiering);
    await run(retention);
    const during = await chunk(minute(20));
    expect(during.status).not.toBe('dropped');
    await writer.query('COMMIT');
    await writer.end();

    expect((await chunk(minute(20))).status).toBe('active'); // written after tiering
    await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
    await run(tiering);
    await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
    await run(retention);
    expect((await chunk(minute(20))).status).toBe('dropped');
    const lake = await lakeTicks(lakeTableDir(config.dataDir));
    const inRange = lake.lines.filter((l) => l.startsWith('2026-06-01T10:20:'));
    expect(inRange).toHaveLength(35);
  });

  it('passes a backlog of more chunks than one gate batch, each run taking all of it', async () => {
    // 60 old one-minute chunks at once (as a backfilled history or a sync outage leaves them): the
    // gate takes them in batches of GATE_BATCH, one fence and one wait per batch.
    const backlog = (m: number) => new Date(OLD + 2 * 86_400_000 + m * 60_000);
    for (let m = 0; m < 60; m++) await insert(ctx.db.pool, backlog(m), 3, 'NVDA');
    await runJobOnce(ctx.db.url, partitionManager, config, logger);
    const statuses = async () => {
      const { rows } = await ctx.db.query<{ status: string; n: number }>(
        `SELECT status, count(*)::int AS n FROM lakets.chunks WHERE range_start >= $1 AND range_start < $2 GROUP BY status`,
        [backlog(0), backlog(60)],
      );
      return Object.fromEntries(rows.map((r) => [r.status, r.n]));
    };
    expect(await statuses()).toEqual({ active: 60 });
    expect(GATE_BATCH).toBeLessThan(60);
    await run(tiering);
    expect(await statuses()).toEqual({ tiered: 60 });
    await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
    await run(retention);
    expect(await statuses()).toEqual({ dropped: 60 });
    const lake = await lakeTicks(lakeTableDir(config.dataDir));
    const source = await sourceTicks(ctx.db.pool);
    const { rows: dropped } = await ctx.db.query<{ n: string }>(`SELECT sum(row_count) AS n FROM lakets.chunks WHERE status = 'dropped'`);
    expect(lake.count).toBe(source.count + Number(dropped[0]!.n));
  });

  it('defers the drop when the sync stops, and the lake equals the source throughout', async () => {
    await insert(ctx.db.pool, minute(30), 10);
    await runJobOnce(ctx.db.url, partitionManager, config, logger);
    await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
    await run(tiering);
    expect((await chunk(minute(30))).status).toBe('tiered');
    await sync!.stop();
    sync = undefined;
    await run(retention);
    const c = await chunk(minute(30));
    expect(c.status).toBe('tiered');
    expect(c.last_gate_result).toMatch(/deferred: (sync is STOPPED|replication slot .* is not active|sync state is stale)/);
    // the pipeline reports the stopped sync and the slot holding WAL back
    const { rows } = await ctx.db.query(`SELECT lakets.pipeline_status()->'lake' AS lake`);
    expect(rows[0]!.lake).toMatchObject({ state: 'STOPPED', slotActive: false });
    expect(rows[0]!.lake.slotRetainedBytes).toBeGreaterThan(0);

    sync = await startSync();
    await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
    await run(retention);
    expect((await chunk(minute(30))).status).toBe('dropped');
    // everything resident plus everything dropped is in the lake, exactly
    const { rows: wal } = await ctx.db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await sync.waitForCommittedLsn(parseLsn(wal[0]!.lsn));
    const source = await sourceTicks(ctx.db.pool);
    const lake = await lakeTicks(lakeTableDir(config.dataDir));
    const { rows: droppedRows } = await ctx.db.query(`SELECT coalesce(sum(row_count), 0)::int AS n FROM lakets.chunks WHERE status = 'dropped'`);
    expect(lake.count).toBe(source.count + droppedRows[0]!.n);
    const resident = new Set(source.lines);
    expect(lake.lines.filter((l) => resident.has(l))).toHaveLength(source.count);
  });
});
