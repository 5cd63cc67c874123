import { beforeAll, describe, expect, it } from 'vitest';
import { sharedSubscriptionStats } from '../../src/server/shared-subscriptions.ts';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { collect, wsClient } from '../helpers/api.ts';

// One event, many clients of the same subscription: executed (and serialised) once, delivered to each.
const ctx = useTestContext('shared_subscriptions');

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  await ctx.startApi();
});

async function tick(symbol: string, price: number): Promise<void> {
  await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), $1, $2, 1)`, [symbol, price]);
}

describe('a subscription many clients share', () => {
  it('executes and serialises each event once per distinct subscription, not once per client', async () => {
    await tick('AAPL', 200);
    const clients = Array.from({ length: 6 }, () => wsClient(ctx.api.url));
    const same = 'subscription { priceUpdated(symbols: ["AAPL"]) { symbol price } }';
    const other = 'subscription { priceUpdated(symbols: ["AAPL"]) { price time } }';
    // 30 clients of one subscription (5 per connection) and 6 of another selection.
    const subs = clients.flatMap((c) => Array.from({ length: 5 }, () => collect<{ priceUpdated: { symbol: string; price: number } }>(c, same)));
    const others = clients.map((c) => collect<{ priceUpdated: { price: number; time: string } }>(c, other));
    try {
      await waitFor(() => [...subs, ...others].every((s) => s.items.length === 1), 10_000, 'every current price');
      const before = { ...sharedSubscriptionStats };
      await tick('AAPL', 201);
      await waitFor(() => [...subs, ...others].every((s) => s.items.length === 2), 10_000, 'the update, to every client');
      expect(sharedSubscriptionStats.executions - before.executions).toBe(2);
      // graphql-ws clients: one JSON text per distinct subscription too
      expect(sharedSubscriptionStats.serialisations - before.serialisations).toBe(2);
      expect(sharedSubscriptionStats.deliveries - before.deliveries).toBe(36);
      // and written to each socket directly, as graphql-ws `next` messages the clients accept
      expect(sharedSubscriptionStats.direct - before.direct).toBe(36);
      for (const s of subs) expect(s.items).toEqual([{ priceUpdated: { symbol: 'AAPL', price: 200 } }, { priceUpdated: { symbol: 'AAPL', price: 201 } }]);
      for (const s of others) expect(s.items.map((i) => i.priceUpdated.price)).toEqual([200, 201]);
      expect([...subs, ...others].flatMap((s) => s.errors)).toEqual([]);
    } finally {
      [...subs, ...others].forEach((s) => s.dispose());
      await Promise.all(clients.map((c) => c.dispose()));
    }
  });

  it('keeps variables apart: the same document with other variables is another subscription', async () => {
    await tick('MSFT', 400);
    await tick('NVDA', 100);
    const client = wsClient(ctx.api.url);
    const query = 'subscription($s: [String!]) { priceUpdated(symbols: $s) { symbol price } }';
    const msft = collect<{ priceUpdated: { symbol: string; price: number } }>(client, query, { s: ['MSFT'] });
    const nvda = collect<{ priceUpdated: { symbol: string; price: number } }>(client, query, { s: ['NVDA'] });
    try {
      await waitFor(() => msft.items.length === 1 && nvda.items.length === 1, 10_000, 'current prices');
      await tick('MSFT', 401);
      await tick('NVDA', 101);
      await waitFor(() => msft.items.length === 2 && nvda.items.length === 2, 10_000, 'updates');
      expect(msft.items.map((i) => i.priceUpdated)).toEqual([{ symbol: 'MSFT', price: 400 }, { symbol: 'MSFT', price: 401 }]);
      expect(nvda.items.map((i) => i.priceUpdated)).toEqual([{ symbol: 'NVDA', price: 100 }, { symbol: 'NVDA', price: 101 }]);
    } finally {
      msft.dispose();
      nvda.dispose();
      await client.dispose();
    }
  });
});
