import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext } from '../helpers/context.ts';
import { gql } from '../helpers/api.ts';
import { bruteBars, type BarSize } from '../helpers/ticks.ts';
import { runJobOnce } from '../../src/scheduler/job.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { rollupRefresh } from '../../src/lifecycle/rollup-refresh.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { seededRandom } from '../../src/ticks/generator.ts';

const ctx = useTestContext('gql_candles');
const config = loadConfig({});
const logger = createLogger('silent');
// A past UTC day with ticks spread over three hours; MSFT has one more day, a week earlier (a gap).
const DAY = Date.UTC(2026, 0, 15);
const WEEK_EARLIER = DAY - 7 * 86_400_000;

beforeAll(async () => {
  const random = seededRandom(5);
  const rows: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const ms = DAY + 9 * 3_600_000 + Math.floor(random() * 3 * 3_600_000);
    rows.push(`('${new Date(ms).toISOString()}', 'AAPL', ${(200 + random() * 10).toFixed(4)}, ${1 + Math.floor(random() * 100)})`);
  }
  for (let i = 0; i < 600; i++) {
    const base = i % 2 ? DAY : WEEK_EARLIER;
    const ms = base + 14 * 3_600_000 + Math.floor(random() * 6 * 3_600_000);
    rows.push(`('${new Date(ms).toISOString()}', 'MSFT', ${(400 + random() * 10).toFixed(4)}, ${1 + Math.floor(random() * 100)})`);
  }
  // an empty minute for fill: PREVIOUS (09:30 is left out on purpose)
  await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ${rows.join(',')}`);
  await ctx.db.query(`DELETE FROM stock_ticks WHERE symbol = 'AAPL' AND time >= $1 AND time < $2`, [new Date(DAY + 9.5 * 3_600_000), new Date(DAY + 9.5 * 3_600_000 + 60_000)]);
  await runJobOnce(ctx.db.url, partitionManager, config, logger);
  await ctx.startApi();
});

const FIELDS = 'id bucket time open high low close volume tickCount final';
const GRAPHQL_UNIT = { minute: 'MINUTE', hour: 'HOUR', day: 'DAY', week: 'WEEK', month: 'MONTH' } as const;

/** A size's arguments as GraphQL takes them. */
function sizeArgs(s: BarSize): string {
  return `granularity: ${GRAPHQL_UNIT[s.unit]}, multiple: ${s.multiple}, timeZone: "${s.zone}"`;
}

/** Brute force in the API's shape (ISO buckets, UTC seconds). */
async function expectedBars(symbol: string, size: BarSize, from: Date, to: Date) {
  return (await bruteBars(ctx.db.pool, symbol, size, from.toISOString(), to.toISOString())).map((b) => ({
    bucket: `${b.bucket}.000Z`,
    time: Date.parse(`${b.bucket}Z`) / 1000,
    open: b.open,
    high: b.high,
    low: b.low,
    close: b.close,
    volume: b.volume,
    tickCount: Number(b.tick_count),
  }));
}

function expectBars(got: Array<Record<string, any>>, expected: Awaited<ReturnType<typeof expectedBars>>, label: string): void {
  expect(got.map(({ volume: _v, final: _f, id: _i, ...c }) => c), label).toEqual(expected.map(({ volume: _v, ...c }) => c));
  got.forEach((c, i) => expect(Math.abs(c.volume - expected[i]!.volume) / expected[i]!.volume, label).toBeLessThan(1e-9));
}

const SIZES: BarSize[] = [
  { unit: 'minute', multiple: 1, zone: 'UTC' },
  { unit: 'minute', multiple: 5, zone: 'UTC' },
  { unit: 'hour', multiple: 1, zone: 'UTC' },
  { unit: 'hour', multiple: 4, zone: 'UTC' },
  { unit: 'day', multiple: 1, zone: 'UTC' },
  { unit: 'day', multiple: 1, zone: 'America/New_York' },
  { unit: 'day', multiple: 1, zone: 'Asia/Kolkata' },
  { unit: 'week', multiple: 1, zone: 'Asia/Kolkata' },
  { unit: 'month', multiple: 3, zone: 'America/New_York' },
];

describe('candles query', () => {
  it('equals aggregating the raw ticks for every size, before and after a refresh', async () => {
    const to = new Date(DAY + 2 * 86_400_000);
    for (const refreshed of [false, true]) {
      if (refreshed) expect((await runJobOnce(ctx.db.url, rollupRefresh, config, logger)).status).toBe('succeeded');
      for (const size of SIZES) {
        const from = size.unit === 'minute' ? new Date(DAY - 86_400_000) : new Date(Date.UTC(2025, 11, 1));
        const res = await gql(ctx.api.url, `query($f: DateTime, $t: DateTime) { candles(symbol: "AAPL", ${sizeArgs(size)}, from: $f, to: $t, limit: 1000) { ${FIELDS} } }`, {
          f: from.toISOString(),
          t: to.toISOString(),
        });
        expect(res.errors, JSON.stringify(size)).toBeUndefined();
        expectBars(res.data.candles, await expectedBars('AAPL', size, from, to), JSON.stringify(size));
        expect(res.data.candles.every((c: { final: boolean }) => c.final === refreshed)).toBe(true);
        for (const c of res.data.candles) expect(Number.isInteger(c.tickCount)).toBe(true);
      }
    }
  });

  it('pages back by bars with before, across gaps, until an empty page', async () => {
    const q = (args: string) => gql(ctx.api.url, `{ candles(symbol: "MSFT", granularity: HOUR, ${args}) { bucket } }`);
    const expected = (await expectedBars('MSFT', { unit: 'hour', multiple: 1, zone: 'UTC' }, new Date(0), new Date(DAY + 86_400_000))).map((b) => b.bucket);
    expect(expected.length).toBe(12);
    const pages: string[][] = [];
    let before: string | undefined;
    for (;;) {
      const res = await q(`limit: 5${before ? `, before: "${before}"` : ''}`);
      expect(res.errors).toBeUndefined();
      const page = res.data.candles.map((c: { bucket: string }) => c.bucket);
      if (page.length === 0) break;
      pages.unshift(page);
      before = page[0];
    }
    // 12 bars over two days a week apart: pages of 5, 5 (across the gap), 2, then empty
    expect(pages.map((p) => p.length)).toEqual([2, 5, 5]);
    expect(pages.flat()).toEqual(expected);
    // before: bars whose bucket starts before it
    const back = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: MINUTE, before: "2026-01-15T10:00:30.000Z", limit: 2) { bucket } }`);
    expect(back.data.candles.map((c: { bucket: string }) => c.bucket)).toEqual(['2026-01-15T09:59:00.000Z', '2026-01-15T10:00:00.000Z']);
    // from: the oldest bars from it; a from/to window keeps to its bars
    const first = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: MINUTE, from: "2026-01-15T09:00:00Z", limit: 3) { bucket } }`);
    expect(first.data.candles.map((c: { bucket: string }) => c.bucket)).toEqual(['2026-01-15T09:00:00.000Z', '2026-01-15T09:01:00.000Z', '2026-01-15T09:02:00.000Z']);
    const window = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: MINUTE, from: "2026-01-15T09:29:00Z", to: "2026-01-15T09:32:00Z") { bucket } }`);
    expect(window.data.candles.map((c: { bucket: string }) => c.bucket)).toEqual(['2026-01-15T09:29:00.000Z', '2026-01-15T09:31:00.000Z']);
    // no argument: the newest bars
    const newest = await gql(ctx.api.url, `{ candles(symbol: "MSFT", granularity: MINUTE, multiple: 15, limit: 2) { bucket } }`);
    expect(newest.data.candles.map((c: { bucket: string }) => c.bucket)).toEqual(['2026-01-15T19:30:00.000Z', '2026-01-15T19:45:00.000Z']);
  });

  it('fills empty buckets with the previous close when asked', async () => {
    const res = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: MINUTE, from: "2026-01-15T09:29:00Z", to: "2026-01-15T09:32:00Z", fill: PREVIOUS) { bucket open high low close volume tickCount filled } }`);
    expect(res.errors).toBeUndefined();
    const [a, gap, c] = res.data.candles;
    expect(gap).toEqual({ bucket: '2026-01-15T09:30:00.000Z', open: a.close, high: a.close, low: a.close, close: a.close, volume: 0, tickCount: 0, filled: true });
    expect(a.filled).toBe(false);
    expect(c.filled).toBe(false);
  });

  it('gives every bar a stable id naming its symbol, size and start', async () => {
    const q = `{ candles(symbol: "AAPL", granularity: DAY, timeZone: "america/new_york", limit: 1) { id bucket } }`;
    const [a, b] = await Promise.all([gql(ctx.api.url, q), gql(ctx.api.url, q)]);
    expect(a.data.candles[0].id).toBe(b.data.candles[0].id);
    expect(a.data.candles[0].id).toBe(`Candle:AAPL:DAY:1:America/New_York:${a.data.candles[0].bucket}`);
    const utc = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: MINUTE, multiple: 5, timeZone: "Asia/Kolkata", limit: 1) { id } }`);
    expect(utc.data.candles[0].id).toMatch(/^Candle:AAPL:MINUTE:5:UTC:/); // the zone plays no part in MINUTE bars
    const price = await gql(ctx.api.url, `{ latestPrices(symbols: ["AAPL"]) { id symbol } }`);
    expect(price.data.latestPrices).toEqual([{ id: 'Price:AAPL', symbol: 'AAPL' }]);
  });

  it('answers bad arguments with BAD_USER_INPUT naming the argument', async () => {
    const cases: Array<[string, RegExp, string | undefined]> = [
      [`candles(symbol: "AAPL", granularity: MINUTE, from: "2026-01-02T00:00:00Z", to: "2026-01-01T00:00:00Z")`, /from must not be after to/, 'from'],
      [`candles(symbol: "NOPE", granularity: MINUTE)`, /unknown symbol/, 'symbol'],
      [`candles(symbol: "AAPL", granularity: MINUTE, from: "2020-01-01T00:00:00Z", to: "2026-01-01T00:00:00Z", limit: 10)`, /more than 10000 minute buckets/, 'to'],
      [`candles(symbol: "AAPL", granularity: HOUR, limit: 5001)`, /limit must be between 1 and 5000/, 'limit'],
      [`candles(symbol: "AAPL", granularity: DAY, before: "2026-01-01T00:00:00Z", from: "2025-01-01T00:00:00Z")`, /before cannot be combined/, 'before'],
      [`candles(symbol: "AAPL", granularity: MINUTE, multiple: 7)`, /multiple 7 is not allowed for MINUTE/, 'multiple'],
      [`candles(symbol: "AAPL", granularity: HOUR, multiple: 5)`, /multiple 5 is not allowed for HOUR/, 'multiple'],
      [`candles(symbol: "AAPL", granularity: DAY, multiple: 2)`, /multiple 2 is not allowed for DAY/, 'multiple'],
      [`candles(symbol: "AAPL", granularity: MONTH, multiple: 2, limit: 10)`, /multiple 2 is not allowed for MONTH/, 'multiple'],
      [`candles(symbol: "AAPL", granularity: MINUTE, multiple: -5)`, /multiple -5 is not allowed/, 'multiple'],
      [`candles(symbol: "AAPL", granularity: DAY, timeZone: "Mars/Olympus_Mons")`, /unknown time zone "Mars\/Olympus_Mons"/, 'timeZone'],
      [`candles(symbol: "AAPL", granularity: DAY, timeZone: "UTC+5")`, /unknown time zone "UTC\+5"/, 'timeZone'],
      [`candles(symbol: "AAPL", granularity: DAY, timeZone: "${'A/'.repeat(40)}")`, /not a time zone/, 'timeZone'],
      [`candles(symbol: "AAPL", granularity: WEEK, timeZone: "")`, /not a time zone/, 'timeZone'],
      [`candles(symbol: "AAPL", granularity: DAY, from: "yesterday")`, /not a valid DateTime: expected an ISO-8601 date-time/, undefined],
    ];
    for (const [field, message, argument] of cases) {
      const res = await gql(ctx.api.url, `{ ${field} { bucket } }`);
      expect(res.errors?.[0]?.message, field).toMatch(message);
      expect(res.errors?.[0]?.extensions?.code, field).toMatch(/BAD_USER_INPUT|GRAPHQL_VALIDATION_FAILED/);
      if (argument) expect(res.errors?.[0]?.extensions?.argument, field).toBe(argument);
    }
    const badGranularity = await gql(ctx.api.url, `query($g: Granularity!) { candles(symbol: "AAPL", granularity: $g) { bucket } }`, { g: 'FORTNIGHT' });
    expect(badGranularity.errors?.[0]?.message).toMatch(/"FORTNIGHT" does not exist in "Granularity" enum/);
  });

  it('prices a request by the rollup rows of its bars: a day of Kolkata bars costs more than a day of UTC ones', async () => {
    const fields = 'id bucket time open high low close volume tickCount final';
    const utc = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: DAY, limit: 500) { ${fields} } }`);
    expect(utc.errors).toBeUndefined();
    const kolkata = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: DAY, timeZone: "Asia/Kolkata", limit: 500) { ${fields} } }`);
    expect(kolkata.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 'cost' });
    const fewer = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: DAY, timeZone: "Asia/Kolkata", limit: 150) { ${fields} } }`);
    expect(fewer.errors).toBeUndefined();
  });

  it('reports every rollup watermark in refresh order', async () => {
    const res = await gql(ctx.api.url, `{ watermarks { rollup granularity watermark pendingInvalidations lastRefreshAt lastRefreshMs } }`);
    expect(res.errors).toBeUndefined();
    expect(res.data.watermarks.map((w: { rollup: string; granularity: string }) => [w.rollup, w.granularity])).toEqual([
      ['ohlcv_1min', 'MINUTE'],
      ['ohlcv_1hour', 'HOUR'],
      ['ohlcv_1day', 'DAY'],
    ]);
    for (const w of res.data.watermarks) {
      expect(w.watermark).not.toBeNull();
      expect(w.lastRefreshAt).not.toBeNull();
    }
  });
});

describe('candleSeries (a watch-list)', () => {
  it('equals candles for each symbol, in the order asked, duplicates once', async () => {
    const size = 'granularity: MINUTE, multiple: 15, limit: 10';
    const res = await gql(ctx.api.url, `{ candleSeries(symbols: ["MSFT", "AAPL", "MSFT"], ${size}) { symbol candles { ${FIELDS} } } }`);
    expect(res.errors).toBeUndefined();
    expect(res.data.candleSeries.map((s: { symbol: string }) => s.symbol)).toEqual(['MSFT', 'AAPL']);
    for (const series of res.data.candleSeries) {
      const alone = await gql(ctx.api.url, `{ candles(symbol: "${series.symbol}", ${size}) { ${FIELDS} } }`);
      expect(series.candles).toEqual(alone.data.candles);
      expect(series.candles).toHaveLength(10);
    }
  });

  it('is bounded: symbols, bars over all symbols, and the cost of every bar', async () => {
    const symbols = (n: number) => JSON.stringify(Array.from({ length: n }, () => 'AAPL'));
    const tooMany = await gql(ctx.api.url, `{ candleSeries(symbols: ${symbols(101)}, granularity: MINUTE, limit: 1) { symbol } }`);
    expect(tooMany.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', argument: 'symbols' } });
    const tooManyBars = await gql(ctx.api.url, `{ candleSeries(symbols: ["AAPL", "MSFT"], granularity: MINUTE, limit: 2600) { symbol } }`);
    expect(tooManyBars.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT' } });
    const costly = await gql(ctx.api.url, `{ candleSeries(symbols: ["AAPL", "MSFT", "NVDA"], granularity: MINUTE, multiple: 30, limit: 300) { symbol candles { close } } }`);
    expect(costly.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 'cost' });
    const empty = await gql(ctx.api.url, `{ candleSeries(symbols: [], granularity: MINUTE) { symbol } }`);
    expect(empty.errors?.[0]).toMatchObject({ extensions: { code: 'BAD_USER_INPUT', argument: 'symbols' } });
  });
});
