import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { collect, gql, wsClient } from '../helpers/api.ts';
import { runJobOnce } from '../../src/scheduler/job.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { rollupRefresh } from '../../src/lifecycle/rollup-refresh.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { seededRandom } from '../../src/ticks/generator.ts';

const ctx = useTestContext('gql_candles');
const config = loadConfig({});
const logger = createLogger('silent');
// A past UTC day with ticks spread over three hours, plus a live tail now.
const DAY = Date.UTC(2026, 0, 15);

beforeAll(async () => {
  const random = seededRandom(5);
  const rows: string[] = [];
  for (let i = 0; i < 3000; i++) {
    const ms = DAY + 9 * 3_600_000 + Math.floor(random() * 3 * 3_600_000);
    rows.push(`('${new Date(ms).toISOString()}', 'AAPL', ${(200 + random() * 10).toFixed(4)}, ${1 + Math.floor(random() * 100)})`);
  }
  // an empty minute for fill: PREVIOUS (09:30 is left out on purpose)
  await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ${rows.join(',')}`);
  await ctx.db.query(`DELETE FROM stock_ticks WHERE time >= $1 AND time < $2`, [new Date(DAY + 9.5 * 3_600_000), new Date(DAY + 9.5 * 3_600_000 + 60_000)]);
  await runJobOnce(ctx.db.url, partitionManager, config, logger);
  await ctx.startApi();
});

/** The candles a brute-force aggregation of the raw ticks gives. */
async function bruteForce(width: string, from: Date, to: Date) {
  const { rows } = await ctx.db.query(
    `SELECT date_bin($1::interval, time, '2000-01-01') AS bucket,
            (array_agg(price ORDER BY time, tick_id))[1] AS open, max(price) AS high, min(price) AS low,
            (array_agg(price ORDER BY time DESC, tick_id DESC))[1] AS close, sum(volume) AS volume, count(*)::float8 AS "tickCount"
       FROM stock_ticks WHERE symbol = 'AAPL' AND date_bin($1::interval, time, '2000-01-01') >= $2 AND date_bin($1::interval, time, '2000-01-01') < $3
      GROUP BY 1 ORDER BY 1`,
    [width, from, to],
  );
  return rows.map((r) => ({ ...r, bucket: r.bucket.toISOString(), time: r.bucket.getTime() / 1000 }) as Record<string, any>);
}

const FIELDS = 'bucket time open high low close volume tickCount final';

describe('candles query', () => {
  it('equals aggregating the raw ticks at every granularity, before and after a refresh', async () => {
    const from = new Date(DAY);
    const to = new Date(DAY + 86_400_000);
    for (const refreshed of [false, true]) {
      if (refreshed) expect((await runJobOnce(ctx.db.url, rollupRefresh, config, logger)).status).toBe('succeeded');
      for (const [granularity, width] of [['MINUTE', '1 minute'], ['HOUR', '1 hour'], ['DAY', '1 day']] as const) {
        const res = await gql(ctx.api.url, `query($f: DateTime, $t: DateTime) { candles(symbol: "AAPL", granularity: ${granularity}, from: $f, to: $t, limit: 5000) { ${FIELDS} } }`, {
          f: from.toISOString(),
          t: to.toISOString(),
        });
        expect(res.errors).toBeUndefined();
        const expected = await bruteForce(width, from, to);
        const got = res.data.candles;
        expect(got.map(({ final: _f, volume: _v, ...c }: Record<string, unknown>) => c)).toEqual(expected.map(({ volume: _v, ...c }) => c));
        got.forEach((c: { volume: number }, i: number) => expect(Math.abs(c.volume - expected[i]!.volume) / expected[i]!.volume).toBeLessThan(1e-9));
        expect(got.every((c: { final: boolean }) => c.final === refreshed)).toBe(true);
      }
    }
  });

  it('pages with limit, from and before, in ascending order', async () => {
    const q = (args: string) => gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: MINUTE, ${args}) { bucket } }`);
    const first = await q(`from: "${new Date(DAY + 9 * 3_600_000).toISOString()}", limit: 3`);
    expect(first.data.candles.map((c: { bucket: string }) => c.bucket)).toEqual([
      '2026-01-15T09:00:00.000Z',
      '2026-01-15T09:01:00.000Z',
      '2026-01-15T09:02:00.000Z',
    ]);
    const back = await q(`before: "2026-01-15T10:00:30.000Z", limit: 2`);
    expect(back.data.candles.map((c: { bucket: string }) => c.bucket)).toEqual(['2026-01-15T09:58:00.000Z', '2026-01-15T09:59:00.000Z']);
    const window = await q(`from: "2026-01-15T09:29:00Z", to: "2026-01-15T09:32:00Z"`);
    expect(window.data.candles.map((c: { bucket: string }) => c.bucket)).toEqual(['2026-01-15T09:29:00.000Z', '2026-01-15T09:31:00.000Z']);
  });

  it('fills empty buckets with the previous close when asked', async () => {
    const res = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: MINUTE, from: "2026-01-15T09:29:00Z", to: "2026-01-15T09:32:00Z", fill: PREVIOUS) { bucket open high low close volume tickCount filled } }`);
    expect(res.errors).toBeUndefined();
    const [a, gap, c] = res.data.candles;
    expect(gap).toEqual({ bucket: '2026-01-15T09:30:00.000Z', open: a.close, high: a.close, low: a.close, close: a.close, volume: 0, tickCount: 0, filled: true });
    expect(a.filled).toBe(false);
    expect(c.filled).toBe(false);
  });

  it('answers bad arguments with BAD_USER_INPUT', async () => {
    const cases: Array<[string, RegExp]> = [
      [`candles(symbol: "AAPL", granularity: MINUTE, from: "2026-01-02T00:00:00Z", to: "2026-01-01T00:00:00Z")`, /from must not be after to/],
      [`candles(symbol: "NOPE", granularity: MINUTE)`, /unknown symbol/],
      [`candles(symbol: "AAPL", granularity: MINUTE, from: "2020-01-01T00:00:00Z", to: "2026-01-01T00:00:00Z")`, /more than 10000 minute buckets/],
      [`candles(symbol: "AAPL", granularity: HOUR, limit: 5001)`, /limit must be between 1 and 5000/],
      [`candles(symbol: "AAPL", granularity: DAY, before: "2026-01-01T00:00:00Z", from: "2025-01-01T00:00:00Z")`, /before cannot be combined/],
      [`candles(symbol: "AAPL", granularity: DAY, from: "yesterday")`, /not a valid DateTime: expected an ISO-8601 date-time/],
    ];
    for (const [field, message] of cases) {
      const res = await gql(ctx.api.url, `{ ${field} { bucket } }`);
      expect(res.errors?.[0]?.message, field).toMatch(message);
      expect(res.errors?.[0]?.extensions?.code, field).toMatch(/BAD_USER_INPUT|GRAPHQL_VALIDATION_FAILED/);
    }
    const badGranularity = await gql(ctx.api.url, `query($g: Granularity!) { candles(symbol: "AAPL", granularity: $g) { bucket } }`, { g: 'WEEK' });
    expect(badGranularity.errors?.[0]?.message).toMatch(/"WEEK" does not exist in "Granularity" enum/);
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

describe('candleUpdated over graphql-ws', () => {
  it('sends the current bar at once, then the open bar and revised past bars as they change', async () => {
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'MSFT', 400, 10)`);
    const client = wsClient(ctx.api.url);
    const sub = collect<{ candleUpdated: { bucket: string; open: number; close: number; high: number; volume: number; tickCount: number } }>(
      client,
      `subscription { candleUpdated(symbol: "MSFT", granularity: MINUTE) { bucket open high close volume tickCount } }`,
    );
    await waitFor(() => sub.items.length >= 1, 10_000, 'the current bar');
    const current = sub.items[0]!.candleUpdated;
    expect(current.close).toBe(400);
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'MSFT', 405, 5)`);
    await waitFor(() => sub.items.some((i) => i.candleUpdated.close === 405), 10_000, 'the open bar updated');
    // a late tick revises a past bar: that bar is pushed too
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ('2026-01-15T09:31:10Z', 'MSFT', 999, 1)`);
    await waitFor(() => sub.items.some((i) => i.candleUpdated.bucket === '2026-01-15T09:31:00.000Z'), 10_000, 'the revised past bar');
    const revised = sub.items.find((i) => i.candleUpdated.bucket === '2026-01-15T09:31:00.000Z')!.candleUpdated;
    expect(revised).toMatchObject({ open: 999, high: 999, close: 999, tickCount: 1 });
    expect(sub.errors).toEqual([]);
    sub.dispose();
    await client.dispose();
  });
});
