// The bounds of a tick (src/sql/023_tick_bounds.sql): what the database refuses and with which
// error, what it accepts exactly at the bounds, that nothing the rollups compute overflows there,
// that the synthetic feed keeps inside them, and that the migration moves rows an older database
// accepted out of the way instead of failing.

import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext } from '../helpers/context.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { bruteCandles, expectSameCandles, insertTicks, liveCandles, type TestTick } from '../helpers/ticks.ts';
import { copyTicks } from '../../src/ticks/tick-table.ts';
import { TICK_LIMITS } from '../../src/ticks/limits.ts';
import { TickGenerator } from '../../src/ticks/generator.ts';
import { migrate } from '../../src/db/migrate.ts';
import { expectedApplyOrder } from '../helpers/migrations.ts';
import { REPO_ROOT } from '../helpers/processes.ts';

const ctx = useTestContext('tick_bounds', { chunkInterval: '1 hour' });

const MINUTE = 60_000_000n;
const HOUR = 60n * MINUTE;
const DAY = 24n * HOUR;

/** UTC midnight `days` days ago, in epoch microseconds. */
function midnight(daysAgo: number): bigint {
  return ((BigInt(Date.now()) * 1000n) / DAY) * DAY - BigInt(daysAgo) * DAY;
}
function iso(micros: bigint): string {
  return new Date(Number(micros / 1000n)).toISOString();
}

/** The next float8 above / below x (the smallest step out of a bound). */
function nextUp(x: number): number {
  const b = new Float64Array([x]);
  const i = new BigInt64Array(b.buffer);
  i[0] = x >= 0 ? i[0]! + 1n : i[0]! - 1n;
  return b[0]!;
}
function nextDown(x: number): number {
  if (x === 0) return -Number.MIN_VALUE;
  const b = new Float64Array([x]);
  const i = new BigInt64Array(b.buffer);
  i[0] = x > 0 ? i[0]! - 1n : i[0]! + 1n;
  return b[0]!;
}

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
});

async function insertOne(price: number | string, volume: number | string, time = 'now()') {
  return ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (${time}, 'AAPL', $1::float8, $2::float8)`, [price, volume]);
}

describe('tick bounds: refusals', () => {
  const cases: { what: string; price: number | string; volume: number | string; time?: string; column: string; code: string; message: RegExp }[] = [
    { what: 'a price near float8 max', price: 1.7e308, volume: 1, column: 'price', code: '23514', message: /^price 1\.7e\+308 of stock_ticks is out of bounds: check constraint stock_ticks_price_bounds requires 1e-12 <= price <= 1000000000000$/ },
    { what: 'a price one step above the bound', price: nextUp(TICK_LIMITS.maxPrice), volume: 1, column: 'price', code: '23514', message: /^price 1000000000000\.0001 of stock_ticks .*requires 1e-12 <= price <= 1000000000000/ },
    { what: 'a zero price', price: 0, volume: 1, column: 'price', code: '23514', message: /^price 0 of stock_ticks is out of bounds/ },
    { what: 'a negative price', price: -5, volume: 1, column: 'price', code: '23514', message: /^price -5 of stock_ticks is out of bounds/ },
    { what: 'a subnormal price', price: 5e-324, volume: 1, column: 'price', code: '23514', message: /^price 5e-324 of stock_ticks is out of bounds/ },
    { what: 'a NaN price', price: 'NaN', volume: 1, column: 'price', code: '23514', message: /^price NaN of stock_ticks is out of bounds/ },
    { what: 'an infinite price', price: 'Infinity', volume: 1, column: 'price', code: '23514', message: /^price Infinity of stock_ticks/ },
    { what: 'a volume of 1e308', price: 10, volume: 1e308, column: 'volume', code: '23514', message: /^volume 1e\+308 of stock_ticks is out of bounds: check constraint stock_ticks_volume_bounds requires 0 <= volume <= 1e\+15$/ },
    { what: 'a volume one step above the bound', price: 10, volume: nextUp(TICK_LIMITS.maxVolume), column: 'volume', code: '23514', message: /^volume 1.0000000000000001e\+15 of stock_ticks/ },
    { what: 'a negative volume', price: 10, volume: -1, column: 'volume', code: '23514', message: /^volume -1 of stock_ticks/ },
    { what: 'a NaN volume', price: 10, volume: 'NaN', column: 'volume', code: '23514', message: /^volume NaN of stock_ticks/ },
    { what: 'an infinite volume', price: 10, volume: '-Infinity', column: 'volume', code: '23514', message: /^volume -Infinity of stock_ticks/ },
    { what: 'a tick dated 4713 BC', price: 10, volume: 1, time: `'4713-01-01 00:00:00+00 BC'`, column: 'time', code: '22008', message: /^time 4713-01-01 00:00:00 BC UTC of stock_ticks is out of bounds: check constraint stock_ticks_time_bounds requires time >= 1900-01-01 00:00:00 UTC$/ },
    { what: 'a tick a microsecond before 1900', price: 10, volume: 1, time: `'1899-12-31 23:59:59.999999+00'`, column: 'time', code: '22008', message: /^time 1899-12-31 23:59:59\.999999 UTC of stock_ticks is out of bounds/ },
  ];

  for (const c of cases) {
    it(`refuses ${c.what}, naming the column, the bound and the value`, async () => {
      const err = await insertOne(c.price, c.volume, c.time).then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string; column: string; constraint: string; table: string },
      );
      expect(err, 'the insert must be refused').toBeDefined();
      expect(err!.message).toMatch(c.message);
      expect(err).toMatchObject({ code: c.code, column: c.column, constraint: `stock_ticks_${c.column}_bounds`, table: 'stock_ticks' });
    });
  }

  it('refuses a bad tick in a COPY batch and in an UPDATE, keeping each statement atomic', async () => {
    const now = BigInt(Date.now()) * 1000n;
    await expect(
      ctx.db.pool.connect().then(async (c) => {
        try {
          await copyTicks(c, [
            { timeMicros: now - 1_000_000n, symbol: 'MSFT', price: 410, volume: 3 },
            { timeMicros: now, symbol: 'MSFT', price: 411, volume: 1e308 },
          ]);
        } finally {
          c.release();
        }
      }),
    ).rejects.toMatchObject({ code: '23514', column: 'volume' });
    expect((await ctx.db.query(`SELECT * FROM stock_ticks WHERE symbol = 'MSFT'`)).rows).toHaveLength(0);
    expect((await ctx.db.query(`SELECT * FROM _lvc_stock_ticks WHERE symbol = 'MSFT'`)).rows).toHaveLength(0);

    await insertTicks(ctx.db.pool, [{ time: now - 2_000_000n, symbol: 'MSFT', price: 409, volume: 2 }]);
    await expect(ctx.db.query(`UPDATE stock_ticks SET price = price * 1e300 WHERE symbol = 'MSFT'`)).rejects.toMatchObject({ code: '23514', column: 'price' });
    await expect(ctx.db.query(`UPDATE stock_ticks SET time = '1850-01-01' WHERE symbol = 'MSFT'`)).rejects.toMatchObject({ code: '22008', column: 'time' });
    const { rows } = await ctx.db.query<{ price: number }>(`SELECT price FROM _lvc_stock_ticks WHERE symbol = 'MSFT'`);
    expect(rows).toEqual([{ price: 409 }]);
  });

  it('still refuses ticks beyond now() + max_future_skew, and caps the configured skew at one day', async () => {
    await expect(insertOne(10, 1, `now() + interval '1 day'`)).rejects.toMatchObject({ code: '22008', message: expect.stringMatching(/beyond now\(\) \+ max_future_skew/) });
    await expect(ctx.db.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '1 hour', NULL, '2 days')`)).rejects.toMatchObject({
      code: '22023',
      message: 'max future skew 2 days is out of bounds: it must be between 0 and 1 day',
    });
    await expect(ctx.db.query(`UPDATE lakets.chronotables SET max_future_skew = '-1 minute'`)).rejects.toMatchObject({ code: '23514' });
    const { rows } = await ctx.db.query(`SELECT max_future_skew::text AS s FROM lakets.chronotables WHERE table_name = 'stock_ticks'`);
    expect(rows).toEqual([{ s: '00:05:00' }]);
  });
});

describe('tick bounds: accepted at the bounds', () => {
  it('accepts the smallest and largest price and volume, 1900-01-01 00:00 UTC and now() + skew exactly', async () => {
    const { rows } = await ctx.db.query<{ tick_id: string; price: number; volume: number }>(
      `INSERT INTO stock_ticks (time, symbol, price, volume) VALUES
         (now() - interval '1 hour', 'NVDA', $1, $3),
         (now() - interval '1 hour', 'NVDA', $2, $4),
         ('1900-01-01 00:00:00+00', 'NVDA', 1, 1),
         (statement_timestamp() + (SELECT max_future_skew FROM lakets.chronotables WHERE table_name = 'stock_ticks'), 'NVDA', 2, 2)
       RETURNING tick_id, price, volume`,
      [TICK_LIMITS.minPrice, TICK_LIMITS.maxPrice, TICK_LIMITS.minVolume, TICK_LIMITS.maxVolume],
    );
    expect(rows.map((r) => [r.price, r.volume])).toEqual([[1e-12, 0], [1e12, 1e15], [1, 1], [2, 2]]);
    // and one step further is refused at every bound
    await expect(insertOne(nextDown(TICK_LIMITS.minPrice), 1)).rejects.toMatchObject({ column: 'price' });
    await expect(insertOne(1, nextDown(TICK_LIMITS.minVolume))).rejects.toMatchObject({ column: 'volume' });
    await expect(insertOne(1, 1, `'1900-01-01 00:00:00+00'::timestamptz - interval '1 microsecond'`)).rejects.toMatchObject({ column: 'time' });
    await expect(
      insertOne(1, 1, `statement_timestamp() + (SELECT max_future_skew FROM lakets.chronotables WHERE table_name = 'stock_ticks') + interval '1 microsecond'`),
    ).rejects.toMatchObject({ code: '22008' });
    await ctx.db.query(`DELETE FROM stock_ticks WHERE symbol = 'NVDA'`);
  });

  it('is what lakets.stock_tick_limits() says, and the tick generator keeps inside it', async () => {
    const { rows } = await ctx.db.query<{ min_price: number; max_price: number; min_volume: number; max_volume: number; min_time: Date }>(
      'SELECT * FROM lakets.stock_tick_limits()',
    );
    expect(rows[0]).toEqual({
      min_price: TICK_LIMITS.minPrice,
      max_price: TICK_LIMITS.maxPrice,
      min_volume: TICK_LIMITS.minVolume,
      max_volume: TICK_LIMITS.maxVolume,
      min_time: new Date(TICK_LIMITS.minTime),
    });
    // Base prices at and beyond both ends, with a wild walk: every tick stays inside and is accepted.
    const generator = new TickGenerator(
      [
        { symbol: 'GOOGL', basePrice: TICK_LIMITS.maxPrice, volatility: 4.9 },
        { symbol: 'AMZN', basePrice: TICK_LIMITS.minPrice, volatility: 4.9 },
      ],
      { seed: 3, volatilityScale: 1000 },
    );
    const ticks = generator.batch(5_000, BigInt(Date.now()) * 1000n - 10_000_000n, 60_000_000n);
    for (const tick of ticks) {
      expect(tick.price).toBeGreaterThanOrEqual(TICK_LIMITS.minPrice);
      expect(tick.price).toBeLessThanOrEqual(TICK_LIMITS.maxPrice);
      expect(tick.volume).toBeGreaterThanOrEqual(TICK_LIMITS.minVolume);
      expect(tick.volume).toBeLessThanOrEqual(TICK_LIMITS.maxVolume);
    }
    expect(ticks.some((k) => k.price === TICK_LIMITS.maxPrice)).toBe(true);
    expect(ticks.some((k) => k.price === TICK_LIMITS.minPrice)).toBe(true);
    const c = await ctx.db.pool.connect();
    try {
      await copyTicks(c, ticks);
    } finally {
      c.release();
    }
    await ctx.db.query(`DELETE FROM stock_ticks WHERE symbol IN ('GOOGL', 'AMZN')`);
  });
});

describe('tick bounds: no aggregate overflows at the bounds', () => {
  it('refreshes ticks at the largest price and volume in one minute and over one day, and candles equal the brute force', async () => {
    const sym = 'TSLA';
    const D = midnight(2);
    const ticks: TestTick[] = [];
    // 3,000 ticks in ONE minute, every one at the largest volume, prices at both extremes.
    for (let i = 0; i < 3_000; i++) {
      ticks.push({ time: D + 10n * HOUR + BigInt(i) * 10_000n, symbol: sym, price: i % 2 ? TICK_LIMITS.maxPrice : TICK_LIMITS.minPrice, volume: TICK_LIMITS.maxVolume });
    }
    // and the largest ticks in every minute of the day
    for (let m = 0n; m < 24n * 60n; m++) {
      ticks.push({ time: D + m * MINUTE + 30_000_000n, symbol: sym, price: TICK_LIMITS.maxPrice, volume: TICK_LIMITS.maxVolume });
    }
    await ctx.db.query('SELECT * FROM lakets.refresh_rollup_cascade()'); // what earlier tests left pending
    await insertTicks(ctx.db.pool, ticks);
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    const { rows } = await ctx.db.query<{ rollup: string; buckets: string; failed_buckets: string; error: string | null }>(
      'SELECT rollup, buckets, failed_buckets, error FROM lakets.refresh_rollup_cascade()',
    );
    for (const r of rows) expect(r, r.rollup).toMatchObject({ failed_buckets: '0', error: null });
    expect(rows.map((r) => Number(r.buckets))).toEqual([1440, 24, 1]);

    const { rows: day } = await ctx.db.query<{ volume: number; tick_count: string; high: number; low: number }>(
      `SELECT volume, tick_count::text, high, low FROM ohlcv_1day WHERE symbol = $1 AND bucket = $2`,
      [sym, iso(D)],
    );
    expect(day).toEqual([{ volume: 4_440 * 1e15, tick_count: '4440', high: TICK_LIMITS.maxPrice, low: TICK_LIMITS.minPrice }]);
    for (const g of ['minute', 'hour', 'day']) {
      const [actual, expected] = await Promise.all([
        liveCandles(ctx.db.pool, sym, g, iso(D - DAY), iso(D + DAY)),
        bruteCandles(ctx.db.pool, 'stock_ticks', sym, g, iso(D - DAY), iso(D + DAY)),
      ]);
      expect(actual.length).toBeGreaterThan(0);
      expect(actual.every((c) => c.final)).toBe(true);
      expectSameCandles(actual, expected, `bounds ${g}`);
    }
  });
});

const LEGACY_SQL = path.join(REPO_ROOT, 'test', 'fixtures', 'legacy-sql');

describe('tick bounds: migrating a database that accepted bad ticks', () => {
  let old: TestDatabase;
  let dir: string;

  beforeAll(async () => {
    old = await ctx.newDatabase('tick_bounds_upgrade', { migrate: false });
    // The migrations of a release before the bounds, as it applied them.
    dir = ctx.tempDir('bounds');
    for (const f of fs.readdirSync(LEGACY_SQL).filter((f) => f < '023')) fs.copyFileSync(path.join(LEGACY_SQL, f), path.join(dir, f));
  });

  it('moves the rows out of bounds to lakets.quarantined_stock_ticks, after which refreshes, latest prices and candles are right', async () => {
    await migrate(old.url, dir); // the schema before the bounds
    const D = midnight(1);
    await old.query(
      `INSERT INTO stock_ticks (time, symbol, price, volume) VALUES
         ($1::timestamptz + interval '10 minutes 1 second', 'AAPL', 200, 1e308),
         ($1::timestamptz + interval '10 minutes 2 seconds', 'AAPL', 201, 1e308),
         ($1::timestamptz + interval '10 minutes 3 seconds', 'AAPL', 202, 7),
         ($1::timestamptz + interval '11 minutes', 'MSFT', 400, 5),
         (now(), 'MSFT', 401, 6),
         (now(), 'BTC-USD', 1.7e308, 1),
         (now() - interval '1 second', 'BTC-USD', 67000, 2),
         ('4713-01-01 00:00:00+00 BC', 'JPM', 10, 1)`,
      [iso(D)],
    );
    // What went wrong before: every refresh failed on the overflow, and the absurd price was the latest.
    await expect(old.query('SELECT * FROM lakets.refresh_rollup_cascade()')).rejects.toThrow(/value out of range: overflow/);
    expect((await old.query(`SELECT price FROM _lvc_stock_ticks WHERE symbol = 'BTC-USD'`)).rows).toEqual([{ price: 1.7e308 }]);

    const applied = await migrate(old.url);
    // Every function file (the database has none recorded), then the migrations from 023 on.
    expect(applied).toEqual(expectedApplyOrder('023'));

    const { rows: moved } = await old.query<{ symbol: string; reason: string }>(
      `SELECT symbol, reason FROM lakets.quarantined_stock_ticks ORDER BY symbol, tick_id`,
    );
    expect(moved).toEqual([
      { symbol: 'AAPL', reason: 'volume 1e+308 out of [0, 1e+15]' },
      { symbol: 'AAPL', reason: 'volume 1e+308 out of [0, 1e+15]' },
      { symbol: 'BTC-USD', reason: 'price 1.7e+308 out of [1e-12, 1000000000000]' },
      { symbol: 'JPM', reason: 'time 4713-01-01 00:00:00 BC UTC before 1900-01-01 00:00:00 UTC' },
    ]);
    expect(Number((await old.query('SELECT count(*) AS n FROM stock_ticks')).rows[0]!.n)).toBe(4);
    // the latest price fell back to the newest remaining tick; the symbol with no tick left lost its entry
    const { rows: lvc } = await old.query(`SELECT symbol, price FROM _lvc_stock_ticks ORDER BY symbol`);
    expect(lvc).toEqual([
      { symbol: 'AAPL', price: 202 },
      { symbol: 'BTC-USD', price: 67000 },
      { symbol: 'MSFT', price: 401 },
    ]);
    // every constraint is validated on the parent and every partition; the old checks are gone
    const { rows: cons } = await old.query<{ conname: string; n: string; valid: boolean }>(
      `SELECT k.conname, count(*)::text AS n, bool_and(k.convalidated) AS valid
         FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
        WHERE k.contype = 'c' AND (c.relname = 'stock_ticks' OR c.relname LIKE 'stock_ticks\\_%')
          AND c.relnamespace = 'public'::regnamespace
        GROUP BY 1 ORDER BY 1`,
    );
    const partitions = Number((await old.query(`SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'public.stock_ticks'::regclass`)).rows[0]!.n);
    expect(cons).toEqual(
      ['stock_ticks_price_bounds', 'stock_ticks_symbol_check', 'stock_ticks_time_bounds', 'stock_ticks_volume_bounds'].map((conname) => ({
        conname,
        n: String(partitions + 1),
        valid: true,
      })),
    );

    const { rows: refreshed } = await old.query<{ failed_buckets: string; error: string | null }>('SELECT * FROM lakets.refresh_rollup_cascade()');
    expect(refreshed.every((r) => r.failed_buckets === '0' && r.error === null)).toBe(true);
    for (const g of ['minute', 'hour', 'day']) {
      const [actual, expected] = await Promise.all([
        liveCandles(old.pool, 'AAPL', g, iso(D - DAY), iso(D + DAY)),
        bruteCandles(old.pool, 'stock_ticks', 'AAPL', g, iso(D - DAY), iso(D + DAY)),
      ]);
      expect(actual).toHaveLength(1);
      expectSameCandles(actual, expected, `after the migration ${g}`);
    }
  });
});
