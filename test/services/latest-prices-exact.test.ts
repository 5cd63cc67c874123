import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { collect, gql, wsClient } from '../helpers/api.ts';

// latestPrice(s) are answered from the price feed's mirror of the last value cache; these tests
// hold it to what a query of the table would answer.
const ctx = useTestContext('latest_prices_exact');
let writer: pg.Client;

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  await ctx.startApi();
  writer = new pg.Client({ connectionString: ctx.db.url });
  await writer.connect();
});

afterAll(async () => {
  await writer.end();
});

/** One tick, committed (autocommit) before this resolves; its tick_id. */
async function write(symbol: string, price: number, agoMs = 0): Promise<string> {
  const { rows } = await writer.query<{ tick_id: string }>(
    `INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - ($3 || ' ms')::interval, $1, $2, 1) RETURNING tick_id`,
    [symbol, price, agoMs],
  );
  return rows[0]!.tick_id;
}

async function latestPrice(symbol: string): Promise<number | null> {
  const res = await gql(ctx.api.url, `{ latestPrice(symbol: "${symbol}") { price } }`);
  expect(res.errors).toBeUndefined();
  return res.data.latestPrice?.price ?? null;
}

describe('latestPrice after a committed write', () => {
  it('sees the write, every time, and answers from the mirror', async () => {
    await write('AAPL', 100);
    await latestPrice('AAPL'); // the mirror is warm
    const before = { ...ctx.api.services.prices.stats };
    for (let i = 1; i <= 150; i++) {
      await write('AAPL', 100 + i);
      expect(await latestPrice('AAPL')).toBe(100 + i);
    }
    const stats = ctx.api.services.prices.stats;
    expect(stats.fromMirror - before.fromMirror).toBeGreaterThanOrEqual(140);
  });

  it('sees several writes to several symbols from concurrent writers, in latestPrices', async () => {
    const others = await Promise.all(
      [0, 1, 2].map(async () => {
        const c = new pg.Client({ connectionString: ctx.db.url });
        await c.connect();
        return c;
      }),
    );
    try {
      const symbols = ['MSFT', 'NVDA', 'TSLA'];
      for (let i = 1; i <= 40; i++) {
        // three writers commit at once, then one read: it must see all three
        await Promise.all(
          others.map((c, k) => c.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), $1, $2, 1)`, [symbols[k], 200 + i + k])),
        );
        const res = await gql(ctx.api.url, `{ latestPrices(symbols: ["MSFT", "NVDA", "TSLA"]) { symbol price } }`);
        expect(res.data.latestPrices).toEqual(symbols.map((symbol, k) => ({ symbol, price: 200 + i + k })));
      }
    } finally {
      await Promise.all(others.map((c) => c.end()));
    }
  });

  it('follows deletes: the newest remaining tick, and no price once none remains', async () => {
    await write('JPM', 150, 2000);
    const newest = await write('JPM', 151, 1000);
    expect(await latestPrice('JPM')).toBe(151);
    await writer.query('DELETE FROM stock_ticks WHERE tick_id = $1', [newest]);
    expect(await latestPrice('JPM')).toBe(150);
    await writer.query(`DELETE FROM stock_ticks WHERE symbol = 'JPM'`);
    expect(await latestPrice('JPM')).toBeNull();
  });

  it('never answers older than the database while the listener is lost and reconnects', async () => {
    await write('V', 300);
    expect(await latestPrice('V')).toBe(300);
    const pid = ctx.api.hub.backendPid!;
    const fromDatabase = ctx.api.services.prices.stats.fromDatabase;
    await ctx.db.query('SELECT pg_terminate_backend($1)', [pid]);
    // Writes while the listener is away send notifications nobody receives.
    for (let i = 1; i <= 30; i++) {
      await write('V', 300 + i);
      expect(await latestPrice('V')).toBe(300 + i);
    }
    await waitFor(() => ctx.api.hub.connected && ctx.api.hub.backendPid !== pid, 15_000, 'listener reconnected');
    await write('V', 400);
    expect(await latestPrice('V')).toBe(400);
    // At least the reads before the reconnection could not be proven current: they read the table.
    expect(ctx.api.services.prices.stats.fromDatabase).toBeGreaterThan(fromDatabase);
  });

  it('reads the table while the listener is down', async () => {
    const api = await ctx.startApi();
    await write('GOOGL', 500);
    await api.hub.close(); // the listener is gone for good
    const before = api.services.prices.stats.fromDatabase;
    await write('GOOGL', 501);
    const res = await gql(api.url, `{ latestPrice(symbol: "GOOGL") { price } }`);
    expect(res.data.latestPrice.price).toBe(501);
    expect(api.services.prices.stats.fromDatabase).toBe(before + 1);
  });
});

describe('priceUpdated while clients connect', () => {
  it('sends a new subscriber the current price alone, and the others nothing', async () => {
    await write('AMZN', 90);
    await latestPrice('AMZN');
    const client = wsClient(ctx.api.url);
    const subs: Array<ReturnType<typeof collect<{ priceUpdated: { price: number } }>>> = [];
    try {
      for (let i = 0; i < 20; i++) {
        const sub = collect<{ priceUpdated: { price: number } }>(client, `subscription { priceUpdated(symbols: ["AMZN"]) { price } }`);
        subs.push(sub);
        await waitFor(() => sub.items.length >= 1, 10_000, `subscriber ${i}'s current price`);
      }
      // Let anything else in flight arrive, then count: one message each, the current price.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(subs.map((s) => s.items.length)).toEqual(subs.map(() => 1));
      expect(subs.every((s) => s.items[0]!.priceUpdated.price === 90)).toBe(true);
      await write('AMZN', 91);
      await waitFor(() => subs.every((s) => s.items.length === 2), 10_000, 'the update, once to each');
      expect(subs.every((s) => s.items[1]!.priceUpdated.price === 91)).toBe(true);
    } finally {
      subs.forEach((s) => s.dispose());
      await client.dispose();
    }
  });
});
