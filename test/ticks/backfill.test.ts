// The demo's history backfill (jobs/backfill.ts, LAKETS_BACKFILL): its settings, the chunks it makes
// for the past (lakets.create_chunks_for_range), the job against a real database (once, resumable,
// never over existing ticks), the live stream continuing from the last prices, and `npm start` on a
// new database: a first start backfills a day that the rollups, the lake and the chunk lifecycle all
// see, and a second start does not write it again.

import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backfillJob, tickSpacingMs } from '../../src/ticks/backfill.ts';
import { runJobOnce } from '../../src/scheduler/job.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { TickStreamer } from '../../src/ticks/streamer.ts';
import { ConfigError, loadConfig, parseBackfillDuration } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { gql } from '../helpers/api.ts';
import { waitFor, useTestContext } from '../helpers/context.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnEntry, type Spawned } from '../helpers/processes.ts';

const HOUR = 3_600_000;
const logger = createLogger('silent');

describe('LAKETS_BACKFILL', () => {
  it('defaults to 24 hours in the demo profile while ticks stream, and to off otherwise', () => {
    expect(loadConfig({ LAKETS_PROFILE: 'demo', LAKETS_TICK_RATE: '1000' }).backfillMs).toBe(24 * HOUR);
    expect(loadConfig({ LAKETS_PROFILE: 'demo', LAKETS_TICK_RATE: '0' }).backfillMs).toBe(0);
    expect(loadConfig({ LAKETS_PROFILE: 'production', LAKETS_TICK_RATE: '1000' }).backfillMs).toBe(0);
    // asked for explicitly, it runs whatever the profile or rate
    expect(loadConfig({ LAKETS_PROFILE: 'production', LAKETS_TICK_RATE: '0', LAKETS_BACKFILL: '2 hours' }).backfillMs).toBe(2 * HOUR);
    expect(loadConfig({ LAKETS_PROFILE: 'demo', LAKETS_TICK_RATE: '1000', LAKETS_BACKFILL: 'off' }).backfillMs).toBe(0);
    expect(loadConfig({ LAKETS_PROFILE: 'demo', LAKETS_TICK_RATE: '1000', LAKETS_BACKFILL: '0' }).backfillMs).toBe(0);
  });

  it('reads durations in seconds, minutes, hours and days, and refuses anything else with a clear error', () => {
    expect(parseBackfillDuration('90 minutes')).toBe(90 * 60_000);
    expect(parseBackfillDuration('1.5h')).toBe(1.5 * HOUR);
    expect(parseBackfillDuration(' 2 DAYS ')).toBe(48 * HOUR);
    expect(parseBackfillDuration('30 s')).toBe(30_000);
    for (const bad of ['24', 'yesterday', '-1 hour', '1 hour; DROP TABLE x', '3 fortnights']) {
      expect(() => parseBackfillDuration(bad), bad).toThrow(ConfigError);
      expect(() => parseBackfillDuration(bad), bad).toThrow(/LAKETS_BACKFILL must be a duration such as "24 hours"/);
    }
    expect(() => parseBackfillDuration('8 days')).toThrow(/at most 7 days/);
  });

  it('writes one tick every 3 s per symbol, spaced wider so that a history never exceeds 500k rows', () => {
    expect(tickSpacingMs(24 * HOUR, 10)).toBe(3_000);
    expect(tickSpacingMs(24 * HOUR, 100)).toBe(Math.ceil((24 * HOUR * 100) / 500_000));
    expect((7 * 24 * HOUR * 5000) / tickSpacingMs(7 * 24 * HOUR, 5000)).toBeLessThanOrEqual(500_000);
  });
});

describe('chunks for a past range (lakets.create_chunks_for_range)', () => {
  const ctx = useTestContext('backfill_chunks');

  it('makes hour chunks for the past up to the premade one-minute chunks, never overlapping them', async () => {
    await ctx.db.query('SELECT * FROM lakets.run_partition_manager()');
    const { rows: made } = await ctx.db.query<{ chunks_created: number; deferred: number }>(
      `SELECT * FROM lakets.create_chunks_for_range('stock_ticks', now() - interval '5 hours', now(), interval '1 hour')`,
    );
    expect(made[0]).toEqual({ chunks_created: 6, deferred: 0 }); // 5 whole or partial hours, and the current hour up to the premade chunk
    const { rows: chunks } = await ctx.db.query<{ range_start: Date; range_end: Date }>(
      `SELECT range_start, range_end FROM lakets.chunks WHERE table_name = 'stock_ticks' ORDER BY range_start`,
    );
    for (let i = 1; i < chunks.length; i++) expect(chunks[i]!.range_start.getTime()).toBe(chunks[i - 1]!.range_end.getTime());
    const lengths = chunks.map((c) => c.range_end.getTime() - c.range_start.getTime());
    expect(lengths.slice(0, 5)).toEqual([HOUR, HOUR, HOUR, HOUR, HOUR]);
    expect(lengths.at(-1)).toBe(60_000);
    // Calling it again finds everything covered.
    const { rows: again } = await ctx.db.query(`SELECT * FROM lakets.create_chunks_for_range('stock_ticks', now() - interval '5 hours', now(), interval '1 hour')`);
    expect(again[0]).toEqual({ chunks_created: 0, deferred: 0 });
    // A tick of that past routes straight into its chunk, counted by the chunk stamps.
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '4 hours', 'AAPL', 200, 1)`);
    const { rows: counted } = await ctx.db.query<{ default_rows: string; stamped: string }>(
      `SELECT (SELECT count(*) FROM stock_ticks_default) AS default_rows,
              (SELECT sum(row_count) FROM lakets.chunks WHERE table_name = 'stock_ticks') AS stamped`,
    );
    expect(counted[0]).toEqual({ default_rows: '0', stamped: '1' });
  });

  it('refuses a finer interval than the table has, an empty range and an unknown table', async () => {
    await expect(ctx.db.query(`SELECT * FROM lakets.create_chunks_for_range('stock_ticks', now() - interval '1 hour', now(), interval '10 seconds')`)).rejects.toThrow(
      /finer than the table's/,
    );
    await expect(ctx.db.query(`SELECT * FROM lakets.create_chunks_for_range('stock_ticks', now(), now() - interval '1 hour')`)).rejects.toThrow(/needs from < to/);
    await expect(ctx.db.query(`SELECT * FROM lakets.create_chunks_for_range('nope', now() - interval '1 hour', now())`)).rejects.toThrow(/unknown chronotable nope/);
  });
});

describe('the backfill job', () => {
  const ctx = useTestContext('backfill_job');
  const config = loadConfig({ LAKETS_TICK_RATE: '1000' });
  beforeAll(async () => {
    expect((await runJobOnce(ctx.db.url, partitionManager, config, logger)).status).toBe('succeeded');
    // Rollups refreshed once (nothing to read yet): their watermarks stand at now, so the history
    // written below lands in closed buckets, which the invalidation trigger logs.
    await ctx.db.query('SELECT * FROM lakets.refresh_rollup_cascade()');
  });

  it('writes the history through the parent into its own chunks, up to now, once', async () => {
    const before = Date.now();
    const outcome = await runJobOnce(ctx.db.url, backfillJob(3 * HOUR), config, logger);
    expect(outcome.status).toBe('succeeded');
    const { rows: ledger } = await ctx.db.query<{ status: string; range_start: Date; done_until: Date; rows_written: string }>(
      `SELECT status, range_start, done_until, rows_written FROM lakets.backfills WHERE table_name = 'stock_ticks'`,
    );
    expect(ledger[0]?.status).toBe('done');
    const written = Number(ledger[0]!.rows_written);
    // Ten symbols, one tick every 3 s each, over the 3 hours and the seconds the job took.
    expect(written).toBeGreaterThanOrEqual(35_990);
    expect(written).toBeLessThan(36_500);
    const { rows: ticks } = await ctx.db.query<{ n: string; lo: Date; hi: Date; symbols: string; in_default: string; stamped: string }>(
      `SELECT count(*) AS n, min(time) AS lo, max(time) AS hi, count(DISTINCT symbol) AS symbols,
              (SELECT count(*) FROM stock_ticks_default) AS in_default,
              (SELECT sum(row_count) FROM lakets.chunks WHERE table_name = 'stock_ticks') AS stamped
         FROM stock_ticks`,
    );
    expect(Number(ticks[0]!.n)).toBe(written);
    expect(ticks[0]!.symbols).toBe('10');
    expect(ticks[0]!.in_default).toBe('0');
    expect(ticks[0]!.stamped).toBe(String(written)); // every row counted by the chunk stamps (the triggers ran)
    expect(ticks[0]!.lo.getTime()).toBeGreaterThanOrEqual(ledger[0]!.range_start.getTime());
    expect(ticks[0]!.lo.getTime() - ledger[0]!.range_start.getTime()).toBeLessThan(60_000);
    expect(ticks[0]!.hi.getTime()).toBeGreaterThan(before - 5_000);
    // The past got hour chunks, the present keeps the table's one-minute chunks.
    const { rows: hourChunks } = await ctx.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM lakets.chunks WHERE table_name = 'stock_ticks' AND range_end - range_start = interval '1 hour'`,
    );
    expect(Number(hourChunks[0]!.n)).toBeGreaterThanOrEqual(2);
    // The other triggers ran too: the last value cache, the rollup invalidations and the change-feed mirror.
    const { rows: seen } = await ctx.db.query<{ lvc: string; invalidated: string; mirrored: string }>(
      `SELECT (SELECT count(*) FROM _lvc_stock_ticks) AS lvc,
              (SELECT count(DISTINCT bucket) FROM lakets.rollup_invalidations WHERE rollup = 'ohlcv_1hour') AS invalidated,
              (SELECT count(*) FROM lakets_cdf._shadow_stock_ticks) AS mirrored`,
    );
    expect(seen[0]!.lvc).toBe('10');
    expect(Number(seen[0]!.invalidated)).toBeGreaterThanOrEqual(3);
    expect(Number(seen[0]!.mirrored)).toBe(written);

    // A second run finds it done and writes nothing.
    const again = await runJobOnce(ctx.db.url, backfillJob(3 * HOUR), config, logger);
    expect(again.status === 'succeeded' && again.result.detail).toEqual({ status: 'already done' });
    const { rows: after } = await ctx.db.query<{ n: string }>('SELECT count(*) AS n FROM stock_ticks');
    expect(Number(after[0]!.n)).toBe(written);
  });

  it('never writes history in front of a table that already holds ticks', async () => {
    const other = await ctx.newDatabase('backfill_existing');
    await runJobOnce(other.url, partitionManager, config, logger);
    await other.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'AAPL', 200, 1)`);
    const outcome = await runJobOnce(other.url, backfillJob(3 * HOUR), config, logger);
    expect(outcome.status === 'succeeded' && outcome.result.detail).toEqual({ status: 'skipped: the table already held ticks' });
    const { rows } = await other.query<{ n: string; status: string }>(
      `SELECT (SELECT count(*) FROM stock_ticks) AS n, (SELECT status FROM lakets.backfills) AS status`,
    );
    expect(rows[0]).toEqual({ n: '1', status: 'skipped' });
  });

  it('resumes an interrupted backfill after the last slice it committed, continuing the prices', async () => {
    const other = await ctx.newDatabase('backfill_resume');
    await runJobOnce(other.url, partitionManager, config, logger);
    // As a crash leaves it: the first hour written and recorded, the rest not.
    await other.query(
      `INSERT INTO lakets.backfills (table_name, status, range_start, done_until, rows_written)
       VALUES ('stock_ticks', 'running', now() - interval '2 hours', now() - interval '1 hour', 1)`,
    );
    await other.query(`SELECT * FROM lakets.create_chunks_for_range('stock_ticks', now() - interval '2 hours', now(), interval '1 hour')`);
    // Told apart by its id, not its price: the walk that continues from 999 may well hit 999.00 again.
    const { rows: seeded } = await other.query<{ tick_id: string }>(
      `INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '61 minutes', 'AAPL', 999, 1) RETURNING tick_id`,
    );
    const seededId = seeded[0]!.tick_id;
    const { rows: mark } = await other.query<{ done_until: Date }>('SELECT done_until FROM lakets.backfills');
    const outcome = await runJobOnce(other.url, backfillJob(2 * HOUR), config, logger);
    expect(outcome.status).toBe('succeeded');
    const { rows } = await other.query<{ status: string; rows_written: string; n: string; lo: Date }>(
      `SELECT b.status, b.rows_written, (SELECT count(*) FROM stock_ticks WHERE tick_id <> $1) AS n,
              (SELECT min(time) FROM stock_ticks WHERE tick_id <> $1) AS lo
         FROM lakets.backfills b`,
      [seededId],
    );
    expect(rows[0]!.status).toBe('done');
    expect(Number(rows[0]!.rows_written)).toBe(Number(rows[0]!.n) + 1);
    expect(rows[0]!.lo.getTime()).toBeGreaterThanOrEqual(mark[0]!.done_until.getTime());
    // AAPL continues from the 999 it had reached, not from its base price of 228.50.
    const { rows: first } = await other.query<{ price: number }>(
      `SELECT price FROM stock_ticks WHERE symbol = 'AAPL' AND tick_id <> $1 ORDER BY time LIMIT 1`,
      [seededId],
    );
    expect(first[0]!.price).toBeGreaterThan(900);
  });

  it('lets the live stream continue from the latest prices', async () => {
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'MSFT', 4000, 1)`);
    const since = new Date();
    const streamer = new TickStreamer(ctx.db.url, { rate: 200, symbols: 10, seed: 5 }, logger);
    await streamer.start();
    await waitFor(() => streamer.stats.ticksWritten >= 100, 20_000, 'streamed ticks');
    await streamer.stop();
    const { rows } = await ctx.db.query<{ price: number }>(
      `SELECT price FROM stock_ticks WHERE symbol = 'MSFT' AND time > $1 AND price <> 4000 ORDER BY time LIMIT 1`,
      [since],
    );
    // MSFT's base price is 415.20: the stream walks on from 4,000.
    expect(rows[0]!.price).toBeGreaterThan(3000);
  });
});

describe('npm start on a new database', { timeout: 420_000 }, () => {
  const ctx = useTestContext('backfill_start', { migrate: false });
  let tmp: string;
  let proc: Spawned | undefined;
  beforeAll(async () => {
    tmp = ctx.tempDir('backfill');
    fs.chmodSync(tmp, 0o755);
  });
  afterAll(async () => {
    if (proc && proc.child.exitCode === null) proc.child.kill('SIGKILL');
  });

  async function start(): Promise<{ base: string; proc: Spawned }> {
    const port = await freePort();
    const spawned = spawnEntry('demo/live/start.ts', {
      DATABASE_URL: ctx.db.url,
      DATABASE_DIRECT_URL: undefined,
      DATABASE_API_URL: undefined,
      PORT: String(port),
      LAKETS_DATA_DIR: tmp,
      LAKETS_TICK_RATE: '100',
      LAKETS_BACKFILL: '24 hours',
      LOG_LEVEL: 'warn',
    });
    proc = spawned;
    const base = `http://127.0.0.1:${port}`;
    await waitFor(
      async () => {
        if (spawned.child.exitCode !== null) throw new Error(`exited early:\n${spawned.output()}`);
        return fetch(`${base}/ready`).then((r) => r.status === 200, () => false);
      },
      180_000,
      'the server to be ready',
    );
    return { base, proc: spawned };
  }

  async function stop(spawned: Spawned): Promise<void> {
    spawned.child.kill('SIGTERM');
    expect(await spawned.exited).toBe(0);
  }

  /** Ticks per hour bucket of AAPL before `before`, from the hour rollup and the live tail. */
  /** The hour bars that ended by `at` (before = the start of its hour: bars that start before it). */
  async function hourTicks(base: string, at: Date): Promise<Array<[number, number]>> {
    const res = await gql(base, `query($before: DateTime) { candles(symbol: "AAPL", granularity: HOUR, before: $before, limit: 48) { time tickCount } }`, {
      before: new Date(Math.floor(at.getTime() / 3_600_000) * 3_600_000).toISOString(),
    });
    expect(res.errors).toBeUndefined();
    return res.data.candles.map((c: { time: number; tickCount: number }) => [c.time, c.tickCount]);
  }

  it('backfills a day on the first start that candles, the lake and the lifecycle see, and not again on the second', async () => {
    const first = await start();
    const { rows: ledger } = await ctx.db.query<{ status: string; range_start: Date; finished_at: Date; rows_written: string }>(
      `SELECT status, range_start, finished_at, rows_written FROM lakets.backfills`,
    );
    expect(ledger).toHaveLength(1);
    expect(ledger[0]!.status).toBe('done');
    const written = Number(ledger[0]!.rows_written);
    expect(written).toBeGreaterThan(250_000);
    expect(written).toBeLessThan(320_000);
    expect(Date.now() - ledger[0]!.range_start.getTime()).toBeGreaterThan(24 * HOUR);

    // Hour candles over the whole day (the first start has streamed for seconds only).
    const candles = await gql(first.base, '{ candles(symbol: "AAPL", granularity: HOUR, limit: 48) { time tickCount } }');
    expect(candles.errors).toBeUndefined();
    expect(candles.data.candles.length).toBeGreaterThan(20);

    // The lifecycle: the day's hour chunks are old enough to be tiered and dropped at once, which the
    // durability gate allows only once the lake holds them.
    await waitFor(
      async () => {
        const res = await gql(first.base, '{ partitions(status: DROPPED) { name rowCount } }');
        return (res.data?.partitions?.length ?? 0) >= 20;
      },
      240_000,
      'the backfilled chunks to be dropped',
    );
    const lake = await gql(first.base, '{ lake { state rowsSynced } }');
    expect(lake.data.lake.state).toBe('STREAMING');
    expect(Number(lake.data.lake.rowsSynced)).toBeGreaterThanOrEqual(written);
    // Dropped history is read back from the lake.
    const from = new Date(Date.now() - 20 * HOUR);
    const ticks = await gql(first.base, `query($from: DateTime!, $to: DateTime!) { ticks(symbol: "AAPL", from: $from, to: $to) { time source } }`, {
      from: from.toISOString(),
      to: new Date(from.getTime() + 10 * 60_000).toISOString(),
    });
    expect(ticks.errors).toBeUndefined();
    expect(ticks.data.ticks.length).toBeGreaterThan(10);
    expect(new Set(ticks.data.ticks.map((tick: { source: string }) => tick.source))).toEqual(new Set(['LAKE']));
    const history = await hourTicks(first.base, ledger[0]!.finished_at);
    await stop(first.proc);

    // The second start writes no history: the ledger is as it was, and so is every hour of the day.
    const second = await start();
    const { rows: after } = await ctx.db.query(`SELECT status, range_start, finished_at, rows_written FROM lakets.backfills`);
    expect(after).toEqual(ledger);
    const { rows: runs } = await ctx.db.query<{ detail: { status?: string } }>(
      `SELECT detail FROM lakets.job_runs WHERE job = 'backfill' ORDER BY id`,
    );
    expect(runs.map((r) => r.detail.status)).toEqual(['done', 'already done']);
    expect(await hourTicks(second.base, ledger[0]!.finished_at)).toEqual(history);
    await stop(second.proc);
  });
});
