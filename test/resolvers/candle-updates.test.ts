import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { collect, gql, wsClient } from '../helpers/api.ts';
import { runJobOnce } from '../../src/scheduler/job.ts';
import { rollupRefresh } from '../../src/lifecycle/rollup-refresh.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';

/**
 * candleUpdated over graphql-ws for bars of any size: the current bar at once, the open bar and
 * revised past bars as ticks land, a bar turning final after a refresh, and one read per size
 * for all its subscribers.
 */
const ctx = useTestContext('gql_candle_updates');
const config = loadConfig({});
const logger = createLogger('silent');

interface Bar {
  id: string;
  bucket: string;
  open: number;
  high: number;
  close: number;
  tickCount: number;
  final: boolean;
}
const FIELDS = 'id bucket open high close tickCount final';

beforeAll(async () => {
  // Function call counts of the API's sessions (superuser setting, the test database only).
  await ctx.db.query(`ALTER DATABASE ${ctx.db.name} SET track_functions = 'pl'`);
  await ctx.startApi();
});

async function calls(fn: string): Promise<number> {
  const { rows } = await ctx.db.query<{ calls: string }>(`SELECT coalesce(sum(calls), 0) AS calls FROM pg_stat_user_functions WHERE funcname = $1`, [fn]);
  return Number(rows[0]!.calls);
}

/**
 * The calls once the count stopped moving: a session reports its counts when idle, at most once a
 * second, and up to ten seconds later when the statistics are busy (PGSTAT_IDLE_INTERVAL); and the
 * feed's first look at the refresh count re-reads the bars it sent as open.
 */
async function settledCalls(fn: string): Promise<number> {
  let last = await calls(fn);
  let stableSince = Date.now();
  const deadline = Date.now() + 40_000;
  while (Date.now() - stableSince < 11_000 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    const now = await calls(fn);
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    }
  }
  return last;
}

describe('candleUpdated', () => {
  it('sends the current bar at once, then the open bar and revised past bars, and the bar again once a refresh made it final', async () => {
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'MSFT', 400, 10)`);
    const client = wsClient(ctx.api.url);
    const sub = collect<{ candleUpdated: Bar }>(client, `subscription { candleUpdated(symbol: "MSFT", granularity: MINUTE) { ${FIELDS} } }`);
    await waitFor(() => sub.items.length >= 1, 10_000, 'the current bar');
    expect(sub.items[0]!.candleUpdated).toMatchObject({ close: 400, final: false });
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'MSFT', 405, 5)`);
    await waitFor(() => sub.items.some((i) => i.candleUpdated.close === 405), 10_000, 'the open bar updated');

    // a late tick revises a past bar: that bar is pushed too, not final while its minute is pending
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ('2026-01-15T09:31:10Z', 'MSFT', 999, 1)`);
    const revised = () => sub.items.filter((i) => i.candleUpdated.bucket === '2026-01-15T09:31:00.000Z').map((i) => i.candleUpdated);
    await waitFor(() => revised().length > 0, 10_000, 'the revised past bar');
    expect(revised()[0]).toMatchObject({ open: 999, high: 999, close: 999, tickCount: 1, final: false });

    // the refresh materialises it (no tick, no notification): it comes again, final (after the
    // feed's first look at the refresh count, so that what is seen is the refresh)
    await new Promise((r) => setTimeout(r, 1_500));
    expect(revised().every((b) => !b.final)).toBe(true);
    expect((await runJobOnce(ctx.db.url, rollupRefresh, config, logger)).status).toBe('succeeded');
    await waitFor(() => revised().some((b) => b.final), 10_000, 'the revised bar, final');
    expect(revised().at(-1)).toMatchObject({ close: 999, final: true });
    // the same bar has the same id in a query
    const query = await gql(ctx.api.url, `{ candles(symbol: "MSFT", granularity: MINUTE, from: "2026-01-15T09:31:00Z", limit: 1) { id } }`);
    expect(query.data.candles[0].id).toBe(revised()[0]!.id);
    expect(sub.errors).toEqual([]);
    sub.dispose();
    await client.dispose();
  });

  it('keeps bars of any size live: five minutes, a New York day, a Kolkata week', async () => {
    const client = wsClient(ctx.api.url);
    const sizes = [
      'granularity: MINUTE, multiple: 5',
      'granularity: DAY, timeZone: "America/New_York"',
      'granularity: WEEK, timeZone: "Asia/Kolkata"',
    ];
    const subs = sizes.map((size) => collect<{ candleUpdated: Bar }>(client, `subscription { candleUpdated(symbol: "NVDA", ${size}) { ${FIELDS} } }`));
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'NVDA', 123.5, 2)`);
    for (const [i, sub] of subs.entries()) {
      await waitFor(() => sub.items.some((x) => x.candleUpdated.close === 123.5), 10_000, `the ${sizes[i]} bar`);
    }
    // each bar is the one a query gives for that size
    for (const [i, size] of sizes.entries()) {
      const res = await gql(ctx.api.url, `{ candles(symbol: "NVDA", ${size}, limit: 1) { ${FIELDS} } }`);
      expect(subs[i]!.items.at(-1)!.candleUpdated, size).toEqual(res.data.candles[0]);
    }
    const day = subs[1]!.items.at(-1)!.candleUpdated.bucket;
    expect(new Date(day).getUTCHours()).toBeOneOf([4, 5]); // New York midnight
    const week = subs[2]!.items.at(-1)!.candleUpdated.bucket;
    expect(week).toMatch(/T18:30:00\.000Z$/); // Monday 00:00 in Kolkata
    expect(new Date(week).getUTCDay()).toBe(0);
    for (const s of subs) s.dispose();
    await client.dispose();
  });

  it('reads each changed size once for all its subscribers and symbols', { timeout: 90_000 }, async () => {
    const clients = [wsClient(ctx.api.url), wsClient(ctx.api.url), wsClient(ctx.api.url)];
    const subs = [
      collect<{ candleUpdated: Bar }>(clients[0]!, `subscription { candleUpdated(symbol: "AAPL", granularity: MINUTE, multiple: 15) { ${FIELDS} } }`),
      collect<{ candleUpdated: Bar }>(clients[1]!, `subscription { candleUpdated(symbol: "AAPL", granularity: MINUTE, multiple: 15) { ${FIELDS} } }`),
      collect<{ candleUpdated: Bar }>(clients[2]!, `subscription { candleUpdated(symbol: "JPM", granularity: MINUTE, multiple: 15) { ${FIELDS} } }`),
      collect<{ candleUpdated: Bar }>(clients[2]!, `subscription { candleUpdated(symbol: "AAPL", granularity: HOUR, multiple: 2) { ${FIELDS} } }`),
    ];
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'AAPL', 200, 1), (now(), 'JPM', 300, 1)`);
    await waitFor(() => subs.every((s) => s.items.length >= 1), 10_000, 'every current bar');
    const before = await settledCalls('candle_bars_at');
    // one statement: AAPL and JPM for MINUTE×15, AAPL for HOUR×2
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'AAPL', 201, 1), (now(), 'JPM', 301, 1)`);
    await waitFor(() => subs.every((s, i) => s.items.some((x) => x.candleUpdated.close === (i === 2 ? 301 : 201))), 10_000, 'every update');
    expect((await settledCalls('candle_bars_at')) - before).toBe(2);
    for (const s of subs) s.dispose();
    for (const c of clients) await c.dispose();
  });

  it('refuses a bad size before subscribing', async () => {
    const client = wsClient(ctx.api.url);
    const sub = collect(client, `subscription { candleUpdated(symbol: "AAPL", granularity: WEEK, timeZone: "Nowhere/Atlantis") { close } }`);
    await waitFor(() => sub.errors.length > 0, 10_000, 'the refusal');
    expect((sub.errors[0] as Array<{ message: string; extensions?: Record<string, unknown> }>)[0]).toMatchObject({
      message: expect.stringMatching(/unknown time zone "Nowhere\/Atlantis"/),
      extensions: { code: 'BAD_USER_INPUT', argument: 'timeZone' },
    });
    sub.dispose();
    await client.dispose();
  });
});
