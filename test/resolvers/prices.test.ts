import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { collect, gql, wsClient } from '../helpers/api.ts';

const ctx = useTestContext('gql_prices');

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  await ctx.startApi();
});

async function tick(symbol: string, price: number, agoMs = 0): Promise<void> {
  await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - ($3 || ' ms')::interval, $1, $2, 7)`, [symbol, price, agoMs]);
}

describe('GraphQL prices over HTTP', () => {
  it('serves health and readiness', async () => {
    expect((await fetch(`${ctx.api.url}/health`)).status).toBe(200);
    const ready = await fetch(`${ctx.api.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
  });

  it('serves GraphiQL at /graphql to a browser', async () => {
    const res = await fetch(`${ctx.api.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/graphiql/i);
  });

  it('returns the latest price with its asset, and null before the first tick', async () => {
    const before = await gql(ctx.api.url, `{ latestPrice(symbol: "NVDA") { price } }`);
    expect(before.data).toEqual({ latestPrice: null });
    await tick('NVDA', 140.5, 2000);
    await tick('NVDA', 141.25, 1000);
    await tick('NVDA', 139, 5000); // late: must not win
    const res = await gql(ctx.api.url, `{ latestPrice(symbol: "NVDA") { symbol price volume time updatedAt asset { name sector exchange } } }`);
    expect(res.errors).toBeUndefined();
    expect(res.data.latestPrice).toMatchObject({
      symbol: 'NVDA',
      price: 141.25,
      volume: 7,
      asset: { name: 'NVIDIA Corporation', sector: 'Semiconductors', exchange: 'NASDAQ' },
    });
    expect(Date.parse(res.data.latestPrice.time)).toBeLessThanOrEqual(Date.now());
  });

  it('returns several prices at once, and every symbol when none are given', async () => {
    await tick('AAPL', 228.1);
    await tick('MSFT', 415.2);
    const some = await gql(ctx.api.url, `{ latestPrices(symbols: ["MSFT", "AAPL", "MSFT"]) { symbol price } }`);
    expect(some.data.latestPrices).toEqual([
      { symbol: 'AAPL', price: 228.1 },
      { symbol: 'MSFT', price: 415.2 },
    ]);
    const all = await gql(ctx.api.url, `{ latestPrices { symbol } }`);
    expect(all.data.latestPrices.map((p: { symbol: string }) => p.symbol)).toEqual(['AAPL', 'MSFT', 'NVDA']);
    const assets = await gql(ctx.api.url, `{ assets { symbol name } }`);
    expect(assets.data.assets).toHaveLength(10);
  });

  it('lists partitions with their status and counts', async () => {
    const res = await gql(ctx.api.url, `{ partitions(status: ACTIVE, limit: 50) { name status rowCount sizeBytes lastWriteLsn rangeStart rangeEnd } }`);
    expect(res.errors).toBeUndefined();
    const written = res.data.partitions.filter((p: { rowCount: number }) => p.rowCount > 0);
    expect(written.length).toBeGreaterThan(0);
    for (const p of written) {
      expect(p.status).toBe('ACTIVE');
      expect(p.lastWriteLsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
      expect(Date.parse(p.rangeEnd)).toBeGreaterThan(Date.parse(p.rangeStart));
    }
  });

  it('answers bad input with BAD_USER_INPUT, never a 500 or a stack trace', async () => {
    const cases: Array<[string, RegExp]> = [
      [`{ latestPrice(symbol: "aapl") { price } }`, /not a valid symbol/],
      [`{ latestPrice(symbol: "${'A'.repeat(17)}") { price } }`, /not a valid symbol/],
      [`{ latestPrice(symbol: "NOPE") { price } }`, /unknown symbol "NOPE"/],
      [`{ latestPrices(symbols: []) { price } }`, /must not be empty/],
      [`{ latestPrices(symbols: [${Array.from({ length: 101 }, () => '"AAPL"').join(',')}]) { price } }`, /at most 100 per request/],
      [`{ partitions(limit: 0) { name } }`, /limit must be between/],
      [`{ partitions(table: "nope") { name } }`, /unknown table/],
    ];
    for (const [query, message] of cases) {
      const res = await gql(ctx.api.url, query);
      expect(res.status).toBe(200);
      expect(res.errors?.[0]?.message).toMatch(message);
      expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      expect(JSON.stringify(res)).not.toMatch(/at .*\.ts:\d+/);
    }
  });

  it('refuses over-deep queries and masks internal errors', async () => {
    const deep = `{ latestPrices { asset { symbol } } }`;
    expect((await gql(ctx.api.url, deep)).errors).toBeUndefined();
    let q = 'symbol';
    for (let i = 0; i < 9; i++) q = `__typename ... on Query { latestPrices { symbol asset { ${q} } } }`;
    const res = await gql(ctx.api.url, `{ ${q} }`);
    expect(res.errors?.[0]?.message).toMatch(/depth limit of 8 exceeded/);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });
});

describe('GraphQL prices over graphql-ws', () => {
  it('sends the current price at once, then every change, for the requested symbols only', async () => {
    await tick('TSLA', 250);
    const client = wsClient(ctx.api.url);
    const sub = collect<{ priceUpdated: { symbol: string; price: number } }>(client, `subscription { priceUpdated(symbols: ["TSLA"]) { symbol price } }`);
    await waitFor(() => sub.items.length >= 1, 10_000, 'initial price');
    expect(sub.items[0]!.priceUpdated).toEqual({ symbol: 'TSLA', price: 250 });
    await tick('AAPL', 1); // not subscribed
    await tick('TSLA', 251);
    await waitFor(() => sub.items.some((i) => i.priceUpdated.price === 251), 10_000, 'updated price');
    expect(sub.items.every((i) => i.priceUpdated.symbol === 'TSLA')).toBe(true);
    expect(sub.errors).toEqual([]);
    sub.dispose();
    await client.dispose();
  });

  it('rejects a subscription with bad symbols with BAD_USER_INPUT', async () => {
    const client = wsClient(ctx.api.url);
    const sub = collect(client, `subscription { priceUpdated(symbols: ["bad!"]) { symbol } }`);
    await waitFor(() => sub.errors.length > 0, 10_000, 'error');
    expect(JSON.stringify(sub.errors)).toMatch(/BAD_USER_INPUT/);
    await client.dispose();
  });

  it('keeps delivering after the listener backend is terminated', async () => {
    const client = wsClient(ctx.api.url);
    const sub = collect<{ priceUpdated: { symbol: string; price: number } }>(client, `subscription { priceUpdated(symbols: ["JPM"]) { symbol price } }`);
    await tick('JPM', 200);
    await waitFor(() => sub.items.some((i) => i.priceUpdated.price === 200), 10_000, 'first price');
    const pid = ctx.api.hub.backendPid!;
    const { rows } = await ctx.db.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
    expect(rows[0]!.ok).toBe(true);
    // a tick written while the listener is away is not lost: the resync re-reads the cache
    await tick('JPM', 201);
    await waitFor(() => sub.items.some((i) => i.priceUpdated.price === 201), 15_000, 'price written while reconnecting');
    await waitFor(() => ctx.api.hub.connected && ctx.api.hub.backendPid !== pid, 15_000, 'listener reconnected');
    await tick('JPM', 202);
    await waitFor(() => sub.items.some((i) => i.priceUpdated.price === 202), 10_000, 'price after reconnect');
    sub.dispose();
    await client.dispose();
  });

  it('streams over SSE too', async () => {
    const ctrl = new AbortController();
    const res = await fetch(`${ctx.api.url}/graphql?query=${encodeURIComponent('subscription { priceUpdated(symbols: ["V"]) { symbol price } }')}`, {
      headers: { accept: 'text/event-stream' },
      signal: ctrl.signal,
    });
    expect(res.status).toBe(200);
    await tick('V', 280.5);
    const reader = res.body!.getReader();
    let text = '';
    const deadline = Date.now() + 10_000;
    while (!text.includes('280.5') && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    ctrl.abort();
    expect(text).toContain('"price":280.5');
  });
});
