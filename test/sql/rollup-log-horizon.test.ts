// The invalidation log holds only the buckets a refresh has closed (late ticks, corrections):
// writes into open buckets log nothing, and the refresh that closes a bucket materialises it from
// the source. The race this opens (docs/ARCHITECTURE.md H15) is forced here with real concurrent
// sessions: a writer that skipped a bucket keeps its transaction open while a refresh closes that
// bucket; the refresh must wait for it (or hold its watermark back), never close without its tick.

import { beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { useTestContext } from '../helpers/context.ts';
import { bruteCandles, expectSameCandles, insertTicks, liveCandles, type Candle } from '../helpers/ticks.ts';

// One-minute chunks (the default), made from now on: the past minutes these tests write go to the
// default partition, so two writers of one minute never queue on the same chunk's write stamp.
const ctx = useTestContext('rollup_log_horizon');

const SECOND = 1_000_000n;
const MINUTE = 60n * SECOND;
const ROLLUPS = [
  ['minute', 'ohlcv_1min'],
  ['hour', 'ohlcv_1hour'],
  ['day', 'ohlcv_1day'],
] as const;

function iso(micros: bigint): string {
  return new Date(Number(micros / 1000n)).toISOString();
}
function nowMicros(): bigint {
  return BigInt(Date.now()) * 1000n;
}

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
});

async function cascade(client: Pick<pg.ClientBase, 'query'> = ctx.db.pool) {
  const { rows } = await client.query<{ rollup: string; buckets: string; closed_buckets: string; watermark: Date; watermark_held: boolean; error: string | null }>(
    'SELECT rollup, buckets, closed_buckets, watermark, watermark_held, error FROM lakets.refresh_rollup_cascade()',
  );
  return Object.fromEntries(rows.map((r) => [r.rollup, r]));
}

async function logged(symbol: string) {
  const { rows } = await ctx.db.query<{ rollup: string; bucket: Date }>(
    `SELECT DISTINCT rollup, bucket FROM lakets.rollup_invalidations WHERE key = $1 ORDER BY 1, 2`,
    [symbol],
  );
  return rows.map((r) => `${r.rollup} ${r.bucket.toISOString()}`);
}

async function watermarks() {
  const { rows } = await ctx.db.query<{ name: string; watermark: Date }>('SELECT name, watermark FROM lakets.rollups ORDER BY name');
  return Object.fromEntries(rows.map((r) => [r.name, r.watermark.toISOString()]));
}

/**
 * The state of a database whose rollups were last refreshed `minutes` ago: every watermark (and
 * log horizon) at the bucket open then. The rows already stored after it are simply rewritten when
 * the next refresh closes them.
 */
async function lastRefreshedAgo(minutes: number) {
  await ctx.db.query(
    `UPDATE lakets.rollups SET watermark = date_bin(bucket_interval, now() - make_interval(mins => $1), '2000-01-01 00:00:00+00')`,
    [minutes],
  );
  await ctx.db.query(
    `SELECT setval(lakets._rollup_horizon_sequence(name)::regclass, lakets._horizon_micros(watermark), true) FROM lakets.rollups`,
  );
}

/**
 * Every served candle and, once nothing is pending for the symbol, the stored rows of every closed
 * bucket (before the watermark), against the brute force.
 */
async function expectExact(symbol: string, from: bigint, label: string) {
  const settled = (await logged(symbol)).length === 0;
  const to = nowMicros() + 60n * MINUTE;
  for (const [g, rollup] of ROLLUPS) {
    const { rows: [registry] } = await ctx.db.query<{ watermark: Date }>('SELECT watermark FROM lakets.rollups WHERE name = $1', [rollup]);
    const closedUntil = registry!.watermark.toISOString();
    const { rows } = await ctx.db.query<Candle>(
      `SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS bucket, open, high, low, close, volume, tick_count::text AS tick_count
         FROM ${rollup} WHERE symbol = $1 AND bucket < $2 ORDER BY bucket`,
      [symbol, closedUntil],
    );
    if (settled) expectSameCandles(rows, await bruteCandles(ctx.db.pool, 'stock_ticks', symbol, g, '2000-01-01', closedUntil), `${label}: stored ${rollup}`);
    const [served, brute] = await Promise.all([
      liveCandles(ctx.db.pool, symbol, g, iso(from - 2n * 24n * 60n * MINUTE), iso(to)),
      bruteCandles(ctx.db.pool, 'stock_ticks', symbol, g, iso(from - 2n * 24n * 60n * MINUTE), iso(to)),
    ]);
    expectSameCandles(served, brute, `${label}: served ${g}`);
  }
}

/** Resolves once `check` holds, polling; fails after `ms`. */
async function until(what: string, check: () => Promise<boolean>, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('rollup log horizon: what the write triggers log', () => {
  it('logs a late tick into a closed bucket at every level whose bucket is closed, and nothing for the open bucket', async () => {
    await insertTicks(ctx.db.pool, [{ time: nowMicros() - 3n * 24n * 60n * MINUTE, symbol: 'AAPL', price: 10, volume: 1 }]);
    await cascade();
    expect(await logged('AAPL')).toEqual([]);

    // A stream writes into the bucket open now (at or after the watermark the refresh just set):
    // nothing to log, the refresh closing it reads it whole.
    const now = nowMicros();
    await insertTicks(ctx.db.pool, [
      { time: now, symbol: 'AAPL', price: 11, volume: 1 },
      { time: now + SECOND, symbol: 'AAPL', price: 12, volume: 1 },
    ]);
    expect(await logged('AAPL')).toEqual([]);

    // A late tick (two days back) and a correction of it: its minute, hour and day are all closed.
    const late = nowMicros() - 2n * 24n * 60n * MINUTE;
    const [id] = await insertTicks(ctx.db.pool, [{ time: late, symbol: 'AAPL', price: 13, volume: 1 }]);
    const bins = (await ctx.db.query<{ m: Date; h: Date; d: Date }>(
      `SELECT date_bin('1 minute', $1::timestamptz, '2000-01-01') AS m, date_bin('1 hour', $1::timestamptz, '2000-01-01') AS h,
              date_bin('1 day', $1::timestamptz, '2000-01-01') AS d`,
      [iso(late)],
    )).rows[0]!;
    const expected = [`ohlcv_1day ${bins.d.toISOString()}`, `ohlcv_1hour ${bins.h.toISOString()}`, `ohlcv_1min ${bins.m.toISOString()}`];
    expect(await logged('AAPL')).toEqual(expected);
    await ctx.db.query(`UPDATE stock_ticks SET price = 14 WHERE tick_id = $1`, [id]);
    expect(await logged('AAPL')).toEqual(expected);
    await expectExact('AAPL', late, 'late and corrected, pending');
    await cascade();
    expect(await logged('AAPL')).toEqual([]);
    await expectExact('AAPL', late, 'late and corrected, refreshed');
  });
});

describe('rollup log horizon: a writer racing the refresh that closes its bucket (docs/ARCHITECTURE.md H15)', () => {
  it('the refresh waits for the writer that skipped the bucket, other writers are not blocked, and the closed bucket holds its tick', async () => {
    const symbol = 'MSFT';
    await cascade();
    await lastRefreshedAgo(10);
    const before = await watermarks();
    const skipped = BigInt(Date.parse(before.ohlcv_1min!)) * 1000n + 5n * MINUTE + 7n * SECOND;

    const writer = new pg.Client({ connectionString: ctx.db.url });
    const other = new pg.Client({ connectionString: ctx.db.url });
    const refresher = new pg.Client({ connectionString: ctx.db.url });
    await Promise.all([writer.connect(), other.connect(), refresher.connect()]);
    try {
      // 1. The writer's statement reads the horizon (10 minutes back) and logs nothing for its
      //    bucket, five minutes past it; its transaction stays open.
      await writer.query('BEGIN');
      await insertTicks(writer, [{ time: skipped, symbol, price: 321, volume: 4 }]);
      const { rows: own } = await writer.query(`SELECT count(*)::int AS n FROM lakets.rollup_invalidations WHERE key = $1`, [symbol]);
      expect(own[0]!.n).toBe(0);

      // 2. A refresh that will close that bucket starts: it moves the horizon at once (outside its
      //    transaction), then waits for the writer.
      await refresher.query(`SET lakets.rollup_writer_wait_ms = '60000'`);
      let settled = false;
      const refresh = cascade(refresher);
      refresh.then(
        () => (settled = true),
        () => (settled = true),
      );
      await until('the refresh has moved the minute horizon', async () => {
        const { rows } = await ctx.db.query<{ h: Date }>(`SELECT lakets.rollup_log_horizon('ohlcv_1min') AS h`);
        return rows[0]!.h.toISOString() > before.ohlcv_1min!;
      });

      // 3. Meanwhile another writer (another symbol: one symbol's writers queue on its latest
      //    price) writes into the same minute and commits, without waiting: it read the new
      //    horizon, so it logs the bucket.
      await other.query(`SET statement_timeout = '5s'`);
      await insertTicks(other, [{ time: skipped + SECOND, symbol: 'TSLA', price: 654, volume: 5 }]);
      expect((await logged('TSLA')).filter((b) => b.startsWith('ohlcv_1min'))).toEqual([`ohlcv_1min ${iso((skipped / MINUTE) * MINUTE)}`]);

      // 4. The refresh is still waiting for the first writer: its backend sleeps between looks at
      //    the writers' lock.
      const { rows: activity } = await ctx.db.query<{ state: string }>(`SELECT state FROM pg_stat_activity WHERE pid = $1`, [
        (refresher as unknown as { processID: number }).processID,
      ]);
      expect(activity[0]!.state).toBe('active');
      expect(settled).toBe(false);

      // 5. The writer commits; the refresh goes on and closes the bucket with both ticks.
      await writer.query('COMMIT');
      const stats = await refresh;
      expect(stats.ohlcv_1min!.watermark_held).toBe(false);
      expect(Number(stats.ohlcv_1min!.closed_buckets)).toBeGreaterThan(0);
      expect(stats.ohlcv_1min!.watermark.getTime()).toBeGreaterThan(Number(skipped / 1000n));
      await expectExact(symbol, skipped, 'closed after the writer committed');
      await expectExact('TSLA', skipped, 'closed after the writer committed');
      const { rows: stored } = await ctx.db.query<{ symbol: string; tick_count: string; high: number }>(
        `SELECT symbol, tick_count::text, high FROM ohlcv_1min
          WHERE symbol IN ($1, 'TSLA') AND bucket = date_bin('1 minute', $2::timestamptz, '2000-01-01') ORDER BY symbol`,
        [symbol, iso(skipped)],
      );
      expect(stored).toEqual([{ symbol, tick_count: '1', high: 321 }, { symbol: 'TSLA', tick_count: '1', high: 654 }]);
    } finally {
      await writer.query('ROLLBACK').catch(() => undefined);
      await Promise.all([writer.end(), other.end(), refresher.end()]);
    }
  });

  it('a writer still open after the wait bound holds the watermark back, and the next refresh closes its bucket with its tick', async () => {
    const symbol = 'NVDA';
    await cascade();
    await lastRefreshedAgo(10);
    const before = await watermarks();
    const skipped = BigInt(Date.parse(before.ohlcv_1min!)) * 1000n + 3n * MINUTE + 11n * SECOND;

    const writer = new pg.Client({ connectionString: ctx.db.url });
    const refresher = new pg.Client({ connectionString: ctx.db.url });
    await Promise.all([writer.connect(), refresher.connect()]);
    try {
      await writer.query('BEGIN');
      await insertTicks(writer, [{ time: skipped, symbol, price: 77, volume: 1 }]);
      await refresher.query(`SET lakets.rollup_writer_wait_ms = '100'`);
      const held = await cascade(refresher);
      expect(held.ohlcv_1min!.watermark_held).toBe(true);
      expect(Number(held.ohlcv_1min!.closed_buckets)).toBe(0);
      expect((await watermarks()).ohlcv_1min).toBe(before.ohlcv_1min);
      // the bucket is still open, read live: the committed state is exact meanwhile
      await expectExact(symbol, skipped, 'watermark held');

      await writer.query('COMMIT');
      const next = await cascade(refresher);
      expect(next.ohlcv_1min!.watermark_held).toBe(false);
      expect((await watermarks()).ohlcv_1min! > before.ohlcv_1min!).toBe(true);
      await expectExact(symbol, skipped, 'closed by the next refresh');
      const { rows: stored } = await ctx.db.query<{ tick_count: string }>(
        `SELECT tick_count::text FROM ohlcv_1min WHERE symbol = $1 AND bucket = date_bin('1 minute', $2::timestamptz, '2000-01-01')`,
        [symbol, iso(skipped)],
      );
      expect(stored).toEqual([{ tick_count: '1' }]);
    } finally {
      await writer.query('ROLLBACK').catch(() => undefined);
      await Promise.all([writer.end(), refresher.end()]);
    }
  });

  it('a refresh rolled back after moving the horizon leaves writers logging more, and loses nothing', async () => {
    const symbol = 'AMZN';
    await cascade();
    await lastRefreshedAgo(10);
    const before = await watermarks();
    const tick = BigInt(Date.parse(before.ohlcv_1min!)) * 1000n + 4n * MINUTE;

    const refresher = new pg.Client({ connectionString: ctx.db.url });
    await refresher.connect();
    try {
      await refresher.query('BEGIN');
      await cascade(refresher);
      await refresher.query('ROLLBACK');
    } finally {
      await refresher.end();
    }
    expect(await watermarks()).toEqual(before);
    // the horizon stayed where the rolled-back refresh put it: the write is logged
    await insertTicks(ctx.db.pool, [{ time: tick, symbol, price: 5, volume: 1 }]);
    expect((await logged(symbol)).filter((b) => b.startsWith('ohlcv_1min'))).toEqual([`ohlcv_1min ${iso(tick)}`]);
    await expectExact(symbol, tick, 'after the rolled-back refresh');
    await cascade();
    await expectExact(symbol, tick, 'refreshed');
    expect(await logged(symbol)).toEqual([]);
  });
});
