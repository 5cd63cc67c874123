// One bad bucket never stops the refresh of the others (src/sql/024_rollup_bucket_isolation.sql).
// Buckets are made to fail on purpose with a trigger on a rollup table that raises for chosen
// (symbol, bucket) pairs, the way a constraint added after the fact or a broken trigger would; the
// real rollup_refresh job runs the cascade.

import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext } from '../helpers/context.ts';
import { bruteCandles, expectSameCandles, insertTicks, liveCandles, type Candle, type TestTick } from '../helpers/ticks.ts';
import { runJobOnce } from '../../src/scheduler/job.ts';
import { rollupRefresh } from '../../src/lifecycle/rollup-refresh.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';

const ctx = useTestContext('rollup_isolation', { chunkInterval: '1 hour' });
const config = loadConfig({});
const logger = createLogger('silent');

const MINUTE = 60_000_000n;
const HOUR = 60n * MINUTE;
const DAY = 24n * HOUR;
const ROLLUPS = [
  ['minute', 'ohlcv_1min'],
  ['hour', 'ohlcv_1hour'],
  ['day', 'ohlcv_1day'],
] as const;

function midnight(daysAgo: number): bigint {
  return ((BigInt(Date.now()) * 1000n) / DAY) * DAY - BigInt(daysAgo) * DAY;
}
function iso(micros: bigint): string {
  return new Date(Number(micros / 1000n)).toISOString();
}

beforeAll(async () => {
  // Poisoned (rollup, symbol, bucket) rows make the recomputation of that bucket raise.
  await ctx.db.query(`
    CREATE TABLE public.poisoned_buckets (rollup text, symbol text, bucket timestamptz, PRIMARY KEY (rollup, symbol, bucket));
    CREATE FUNCTION public.refuse_poisoned_bucket() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM public.poisoned_buckets p
                    WHERE p.rollup = TG_TABLE_NAME AND p.symbol = NEW.symbol AND p.bucket = NEW.bucket) THEN
            RAISE EXCEPTION 'poisoned bucket % % of %', NEW.symbol, NEW.bucket, TG_TABLE_NAME USING ERRCODE = '23514';
        END IF;
        RETURN NEW;
    END $$;
    CREATE TRIGGER poison BEFORE INSERT ON public.ohlcv_1min FOR EACH ROW EXECUTE FUNCTION public.refuse_poisoned_bucket();
    CREATE TRIGGER poison BEFORE INSERT ON public.ohlcv_1hour FOR EACH ROW EXECUTE FUNCTION public.refuse_poisoned_bucket();`);
  await ctx.db.query('SELECT lakets.run_partition_manager()');
});

async function refreshJob() {
  const outcome = await runJobOnce(ctx.db.url, rollupRefresh, config, logger);
  if (outcome.status !== 'succeeded') throw new Error(`rollup_refresh ${outcome.status}: ${'error' in outcome ? outcome.error.message : ''}`);
  return outcome.result.detail as {
    rollups: { rollup: string; buckets: number; closedBuckets?: number; failedBuckets?: number; deferredBuckets?: number; error?: string; watermark: Date | null }[];
    failedBuckets?: number;
    failures?: { rollup: string; key: string; bucket: Date; error: string; attempts: number }[];
  };
}

async function pending(rollup?: string) {
  const { rows } = await ctx.db.query<{ rollup: string; key: string; bucket: Date }>(
    `SELECT DISTINCT rollup, key, bucket FROM lakets.rollup_invalidations WHERE $1::text IS NULL OR rollup = $1 ORDER BY 1, 2, 3`,
    [rollup ?? null],
  );
  return rows.map((r) => `${r.rollup} ${r.key} ${r.bucket.toISOString()}`);
}

async function failed() {
  const { rows } = await ctx.db.query<{ rollup: string; key: string; bucket: Date; error: string; sqlstate: string; attempts: number }>(
    `SELECT rollup, key, bucket, error, sqlstate, attempts FROM lakets.rollup_failed_buckets ORDER BY 1, 2, 3`,
  );
  return rows;
}

/** Every candle of every granularity, as served, against the brute force over the raw ticks. */
async function compareCandles(symbols: readonly string[], from: bigint, to: bigint, label: string) {
  const notFinal: string[] = [];
  for (const symbol of symbols) {
    for (const [g] of ROLLUPS) {
      const [actual, expected] = await Promise.all([
        liveCandles(ctx.db.pool, symbol, g, iso(from), iso(to)),
        bruteCandles(ctx.db.pool, 'stock_ticks', symbol, g, iso(from), iso(to)),
      ]);
      expect(actual.length, `${label} ${symbol} ${g}`).toBeGreaterThan(0);
      expectSameCandles(actual, expected, `${label} ${symbol} ${g}`);
      for (const c of actual) if (!c.final) notFinal.push(`${symbol} ${g} ${c.bucket}`);
    }
  }
  return notFinal;
}

/** The stored rows of every rollup for the symbol against the brute force, except the given buckets. */
async function compareMaterialised(symbol: string, label: string, except: readonly string[] = []) {
  for (const [g, rollup] of ROLLUPS) {
    const { rows } = await ctx.db.query<Candle>(
      `SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS bucket, open, high, low, close, volume, tick_count::text AS tick_count
         FROM ${rollup} WHERE symbol = $1 ORDER BY bucket`,
      [symbol],
    );
    const expected = await bruteCandles(ctx.db.pool, 'stock_ticks', symbol, g, '2000-01-01', '2100-01-01');
    const keep = (c: Candle) => !except.includes(`${rollup} ${c.bucket}`);
    expectSameCandles(rows.filter(keep), expected.filter(keep), `${label} materialised ${rollup} ${symbol}`);
  }
}

describe('rollup refresh: one failing bucket', () => {
  const D = midnight(3);
  const symbols = ['AAPL', 'MSFT', 'NVDA'];
  const bad = D + 30n * MINUTE;
  const badMinute = `ohlcv_1min ${iso(bad).slice(0, 19)}`;

  it('refreshes every other bucket and rollup, advances the watermarks, keeps the bad bucket pending and reports it', async () => {
    const ticks: TestTick[] = [];
    for (let m = 0n; m < 120n; m++) {
      for (const [i, symbol] of symbols.entries()) {
        ticks.push({ time: D + m * MINUTE + BigInt(i + 1) * 1_000_000n, symbol, price: 100 + Number(m) + i, volume: 1 + i });
      }
    }
    await insertTicks(ctx.db.pool, ticks);
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    await ctx.db.query(`INSERT INTO poisoned_buckets VALUES ('ohlcv_1min', 'NVDA', $1)`, [iso(bad)]);

    const detail = await refreshJob();
    const byName = Object.fromEntries(detail.rollups.map((r) => [r.rollup, r]));
    // The first refresh closes everything before now: the one pass over the minutes' range fails
    // on the bad bucket, so they all go the log's way, which isolates it.
    expect(byName.ohlcv_1min).toMatchObject({ buckets: 360, closedBuckets: 360, failedBuckets: 1, error: expect.stringMatching(/^poisoned bucket NVDA/) });
    expect(byName.ohlcv_1hour).toMatchObject({ closedBuckets: 6 });
    expect(byName.ohlcv_1day).toMatchObject({ closedBuckets: 3 });
    expect(byName.ohlcv_1hour!.failedBuckets).toBeUndefined();
    expect(detail.failedBuckets).toBe(1);
    expect(detail.failures).toEqual([expect.objectContaining({ rollup: 'ohlcv_1min', key: 'NVDA', attempts: 1, error: expect.stringMatching(/^poisoned bucket NVDA/) })]);
    const { rows: run } = await ctx.db.query(`SELECT status FROM lakets.job_runs WHERE job = 'rollup_refresh' ORDER BY id DESC LIMIT 1`);
    expect(run).toEqual([{ status: 'succeeded' }]);

    // the failing bucket: recorded with its error, its invalidation kept, nothing else pending
    expect(await failed()).toEqual([
      { rollup: 'ohlcv_1min', key: 'NVDA', bucket: new Date(iso(bad)), error: expect.stringMatching(/^poisoned bucket NVDA/), sqlstate: '23514', attempts: 1 },
    ]);
    expect(await pending()).toEqual([`ohlcv_1min NVDA ${iso(bad)}`]);

    // watermarks advanced to the bucket open now
    const { rows: wm } = await ctx.db.query<{ name: string; ok: boolean }>(
      `SELECT name, watermark = date_bin(bucket_interval, now(), '2000-01-01') AS ok FROM lakets.rollups ORDER BY name`,
    );
    expect(wm.every((r) => r.ok)).toBe(true);

    // everything else is materialised exactly; every candle (the bad bucket live) equals the brute force
    await compareMaterialised('AAPL', 'one failing');
    await compareMaterialised('MSFT', 'one failing');
    await compareMaterialised('NVDA', 'one failing', [badMinute, `ohlcv_1hour ${iso(D).slice(0, 19)}`, `ohlcv_1day ${iso(D).slice(0, 19)}`]);
    const notFinal = await compareCandles(symbols, D - DAY, D + DAY, 'one failing');
    expect(notFinal).toEqual([`NVDA minute ${iso(bad).slice(0, 19)}`, `NVDA hour ${iso(D).slice(0, 19)}`, `NVDA day ${iso(D).slice(0, 19)}`]);
  });

  it('retries the bad bucket on every run without holding back new work, and recovers once it can be computed', async () => {
    // new late ticks for the healthy symbols and for the bad bucket itself
    await insertTicks(ctx.db.pool, [
      { time: D + 5n * MINUTE + 30_000_000n, symbol: 'AAPL', price: 1, volume: 9 },
      { time: D + 90n * MINUTE + 30_000_000n, symbol: 'MSFT', price: 999, volume: 9 },
      { time: bad + 45_000_000n, symbol: 'NVDA', price: 500, volume: 9 },
    ]);
    const second = await refreshJob();
    expect(second.rollups.find((r) => r.rollup === 'ohlcv_1min')).toMatchObject({ buckets: 3, failedBuckets: 1 });
    expect((await failed()).map((f) => f.attempts)).toEqual([2]);
    expect(await pending()).toEqual([`ohlcv_1min NVDA ${iso(bad)}`]);
    await compareMaterialised('AAPL', 'retry');
    await compareMaterialised('MSFT', 'retry');
    await compareCandles(['NVDA'], D - DAY, D + DAY, 'retry');

    // the cause goes away: the next run refreshes the bucket and what depends on it, and clears the record
    await ctx.db.query('DELETE FROM poisoned_buckets');
    const third = await refreshJob();
    expect(third.failedBuckets).toBeUndefined();
    expect(third.rollups.map((r) => [r.rollup, r.buckets])).toEqual([['ohlcv_1min', 1], ['ohlcv_1hour', 1], ['ohlcv_1day', 1]]);
    expect(await failed()).toEqual([]);
    expect(await pending()).toEqual([]);
    await compareMaterialised('NVDA', 'recovered');
    expect(await compareCandles(symbols, D - DAY, D + DAY, 'recovered')).toEqual([]);
  });
});

describe('rollup refresh: a rollup that fails as a whole', () => {
  it('does not stop the rollups after it, and loses none of its invalidations', async () => {
    const D = midnight(5);
    await insertTicks(ctx.db.pool, [
      { time: D + 10n * MINUTE, symbol: 'JPM', price: 10, volume: 1 },
      { time: D + 70n * MINUTE, symbol: 'JPM', price: 11, volume: 2 },
    ]);
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    // the hour's refresh raises after its buckets (recording the refresh), so nothing of it may stick
    await ctx.db.query(`
      CREATE FUNCTION public.refuse_hour_refresh() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'the hour rollup is broken' USING ERRCODE = 'XX000'; END $$;
      CREATE TRIGGER broken BEFORE UPDATE ON lakets.rollups FOR EACH ROW WHEN (NEW.name = 'ohlcv_1hour')
        EXECUTE FUNCTION public.refuse_hour_refresh();`);
    try {
      const detail = await refreshJob();
      const byName = Object.fromEntries(detail.rollups.map((r) => [r.rollup, r]));
      expect(byName.ohlcv_1min).toMatchObject({ buckets: 2 });
      expect(byName.ohlcv_1min!.error).toBeUndefined();
      expect(byName.ohlcv_1hour).toMatchObject({ buckets: 0, error: 'the hour rollup is broken' });
      // the day still ran: ingest invalidates every level at once, so it had its own bucket to refresh
      expect(byName.ohlcv_1day).toMatchObject({ buckets: 1 });
      expect(byName.ohlcv_1day!.error).toBeUndefined();
      // the hour's claimed invalidations are back in the log; candles stay exact meanwhile
      expect(await pending()).toEqual([`ohlcv_1hour JPM ${iso(D)}`, `ohlcv_1hour JPM ${iso(D + HOUR)}`]);
      await compareCandles(['JPM'], D - DAY, D + DAY, 'hour broken');
    } finally {
      await ctx.db.query('DROP TRIGGER broken ON lakets.rollups');
    }
    const detail = await refreshJob();
    expect(detail.rollups.map((r) => [r.rollup, r.buckets, r.error])).toEqual([
      ['ohlcv_1min', 0, undefined],
      ['ohlcv_1hour', 2, undefined],
      ['ohlcv_1day', 1, undefined],
    ]);
    expect(await pending()).toEqual([]);
    await compareMaterialised('JPM', 'hour repaired');
  });
});

describe('rollup refresh: many failing buckets', () => {
  it('bounds the work of each refresh, and the healthy buckets are all refreshed within a few runs', async () => {
    const D = midnight(7);
    const ticks: TestTick[] = [];
    for (let m = 0n; m < 600n; m++) ticks.push({ time: D + m * MINUTE + 1_000_000n, symbol: 'V', price: 200 + Number(m % 17n), volume: 1 });
    await insertTicks(ctx.db.pool, ticks);
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    // one minute in every 15 fails: 40 bad buckets spread over the claim
    const badMinutes = Array.from({ length: 40 }, (_, i) => D + BigInt(7 + 15 * i) * MINUTE);
    await ctx.db.query(`INSERT INTO poisoned_buckets SELECT 'ohlcv_1min', 'V', unnest($1::timestamptz[])`, [badMinutes.map(iso)]);

    const runs: { buckets: number; failed: number; deferred: number }[] = [];
    for (let i = 0; i < 12; i++) {
      const detail = await refreshJob();
      const m = detail.rollups.find((r) => r.rollup === 'ohlcv_1min')!;
      runs.push({ buckets: m.buckets, failed: m.failedBuckets ?? 0, deferred: m.deferredBuckets ?? 0 });
      const left = await pending('ohlcv_1min');
      if (left.length === badMinutes.length && (await failed()).length === badMinutes.length) break;
    }
    // the first run stopped at its budget and put the rest back in the log, untouched
    expect(runs[0]!.buckets).toBe(600);
    expect(runs[0]!.deferred).toBeGreaterThan(0);
    expect(runs[0]!.failed).toBeLessThan(40);
    expect(runs.length).toBeLessThan(12);
    // in the end exactly the bad buckets are pending and recorded, everything else is materialised
    expect(await pending('ohlcv_1min')).toEqual(badMinutes.map((b) => `ohlcv_1min V ${iso(b)}`));
    expect((await failed()).map((f) => f.bucket.toISOString())).toEqual(badMinutes.map(iso));
    await compareMaterialised('V', 'many failing', [
      ...badMinutes.map((b) => `ohlcv_1min ${iso(b).slice(0, 19)}`),
      ...Array.from({ length: 10 }, (_, h) => `ohlcv_1hour ${iso(D + BigInt(h) * HOUR).slice(0, 19)}`),
      `ohlcv_1day ${iso(D).slice(0, 19)}`,
    ]);
    await compareCandles(['V'], D - DAY, D + DAY, 'many failing');

    await ctx.db.query('DELETE FROM poisoned_buckets');
    for (let i = 0; i < 5 && (await pending()).length > 0; i++) await refreshJob();
    expect(await pending()).toEqual([]);
    expect(await failed()).toEqual([]);
    await compareMaterialised('V', 'many repaired');
  });
});
