import { getIntrospectionQuery } from 'graphql';
import WebSocket from 'ws';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { collect, gql, wsClient } from '../helpers/api.ts';
import { OPERATION_LIMITS } from '../../src/server/operation-limits.ts';

/**
 * Operations built to exhaust the server are refused before they run, with BAD_USER_INPUT naming
 * the limit; after each, the process still answers another client's latestPrice.
 */

const ctx = useTestContext('attacks_gql');

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '1 second', 'AAPL', 228.5, 3)`);
  await ctx.startApi();
});

async function stillServing(): Promise<void> {
  const res = await gql(ctx.api.url, `{ latestPrice(symbol: "AAPL") { price } }`);
  expect(res.errors).toBeUndefined();
  expect(res.data.latestPrice.price).toBe(228.5);
}

async function refused(query: string, limit: string, variables?: Record<string, unknown>): Promise<string> {
  const res = await gql(ctx.api.url, query, variables);
  expect(res.data ?? null, JSON.stringify(res)).toBeNull();
  const error = res.errors?.find((e) => e.extensions?.limit === limit);
  expect(error, JSON.stringify(res.errors)).toBeDefined();
  expect(error!.extensions!.code).toBe('BAD_USER_INPUT');
  return error!.message;
}

describe('the cost of an operation is bounded before it runs', () => {
  it('measures fragments that each spread the next one twice in linear time, and refuses them', async () => {
    // 24 fragments, each spreading the next twice: 2^24 expansions if walked naively.
    let fragments = '';
    for (let i = 0; i < 24; i++) fragments += `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }\n`;
    fragments += 'fragment F24 on Query { latestPrices { symbol } }';
    const message = await refused(`query Bomb { ...F0 }\n${fragments}`, 'cost');
    expect(message).toMatch(/exceeds the budget of 20000/);
    // the same shape nested in fields: the depth rule follows each fragment once
    let nested = '';
    for (let i = 0; i < 24; i++) nested += `fragment N${i} on Price { asset { symbol } ...N${i + 1} ...N${i + 1} }\n`;
    nested += 'fragment N24 on Price { symbol }';
    const res = await gql(ctx.api.url, `{ latestPrices { ...N0 } }\n${nested}`);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    await stillServing();
  });

  it('refuses 1,000 aliases of candles(limit: 5000, fill: PREVIOUS) on the alias limit', async () => {
    const aliases = Array.from({ length: 1000 }, (_, i) => `c${i}: candles(symbol: "AAPL", granularity: MINUTE, limit: 5000, fill: PREVIOUS) { close }`);
    const res = await gql(ctx.api.url, `{ ${aliases.join(' ')} }`);
    // 1,000 aliases pass the token limit first: either limit refuses it before anything runs
    expect(res.data ?? null).toBeNull();
    expect(['tokens', 'aliases']).toContain(res.errors?.[0]?.extensions?.limit);
    const some = Array.from({ length: OPERATION_LIMITS.maxAliases + 1 }, (_, i) => `c${i}: latestPrice(symbol: "AAPL") { price }`);
    expect(await refused(`{ ${some.join(' ')} }`, 'aliases')).toMatch(/Aliases limit of 15 exceeded, found 16/);
    await stillServing();
  });

  it('prices candles and ticks by their limit and refuses what is over budget', async () => {
    expect(await refused(`{ candles(symbol: "AAPL", granularity: MINUTE, limit: 5000, fill: PREVIOUS) { time open high low close volume } }`, 'cost')).toMatch(
      /cost 35000 exceeds/,
    );
    expect(await refused(`{ ticks(symbol: "AAPL", limit: 10000) { time price volume tickId } }`, 'cost')).toMatch(/cost 50000 exceeds/);
    // eleven aliases of ticks(limit: 1000), each affordable alone, are not affordable together
    const many = Array.from({ length: 11 }, (_, i) => `t${i}: ticks(symbol: "AAPL", limit: 1000) { price }`);
    await refused(`{ ${many.join(' ')} }`, 'cost');
    // within budget it runs
    const ok = await gql(ctx.api.url, `{ candles(symbol: "AAPL", granularity: MINUTE, limit: 500) { time close } ticks(symbol: "AAPL", limit: 1000) { price } }`);
    expect(ok.errors).toBeUndefined();
    expect(ok.data.ticks).toEqual([{ price: 228.5 }]);
  });

  it('prices with the variables of each request (no cached verdict)', async () => {
    const query = `query Ticks($limit: Int) { ticks(symbol: "AAPL", limit: $limit) { time price volume } }`;
    expect((await gql(ctx.api.url, query, { limit: 10 })).errors).toBeUndefined();
    await refused(query, 'cost', { limit: 10000 });
    expect((await gql(ctx.api.url, query, { limit: 10 })).errors).toBeUndefined();
    const symbols = `query P($s: [String!]) { latestPrices(symbols: $s) { symbol price time volume updatedAt asset { name sector exchange basePrice volatility } } }`;
    expect((await gql(ctx.api.url, symbols, { s: ['AAPL'] })).errors).toBeUndefined();
  });

  it('refuses too many root fields, directives and tokens', async () => {
    const fields = ['assets { symbol }', 'latestPrices { symbol }', 'watermarks { rollup }', 'pipeline { at }', 'lake { state }', 'partitions(limit: 1) { name }'];
    const roots = [...fields, ...Array.from({ length: 11 }, (_, i) => `p${i}: latestPrice(symbol: "AAPL") { price }`)];
    expect(await refused(`{ ${roots.join(' ')} }`, 'rootFields')).toMatch(/Root fields limit of 16 exceeded, found 17/);
    const directives = Array.from({ length: 21 }, () => '@include(if: true)').join(' ');
    expect(await refused(`{ latestPrice(symbol: "AAPL") ${directives} { price } }`, 'directives')).toMatch(/Directives limit of 20/);
    const tokens = `{ latestPrice(symbol: "AAPL") { ${Array.from({ length: 2100 }, () => 'price').join(' ')} } }`;
    const res = await gql(ctx.api.url, tokens);
    expect(res.errors?.[0]?.extensions, JSON.stringify(res.errors)).toMatchObject({ code: 'BAD_USER_INPUT', limit: 'tokens' });
    expect(res.errors?.[0]?.message).toMatch(/Token limit of 2000 exceeded/);
    await stillServing();
  });

  it('bounds introspection, yet answers GraphiQL’s schema query and the dashboard’s', async () => {
    let nested = 'name';
    for (let i = 0; i < 6; i++) nested = `fields { type { ofType { ${nested} } } }`;
    const bomb = await gql(ctx.api.url, `{ __schema { types { ${nested} } } }`);
    expect(bomb.data ?? null).toBeNull();
    expect(bomb.errors?.length).toBeGreaterThan(0);
    const full = await gql(
      ctx.api.url,
      getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true, specifiedByUrl: true, directiveIsRepeatable: true, schemaDescription: true }),
    );
    expect(full.errors).toBeUndefined();
    expect(full.data.__schema.types.length).toBeGreaterThan(10);
    const dashboard = await gql(
      ctx.api.url,
      `query Capabilities {
        __schema { queryType { fields { name } } subscriptionType { fields { name } } }
        pipeline: __type(name: "Pipeline") { fields { name args { name } } }
        partitionCounts: __type(name: "PartitionCounts") { fields { name } }
        jobStatus: __type(name: "JobStatus") { fields { name } }
        partition: __type(name: "Partition") { fields { name } }
        watermark: __type(name: "Watermark") { fields { name } }
        lake: __type(name: "LakeStatus") { fields { name } }
        candle: __type(name: "Candle") { fields { name } }
        price: __type(name: "Price") { fields { name } }
        asset: __type(name: "Asset") { fields { name } }
      }`,
    );
    expect(dashboard.errors).toBeUndefined();
  });

  it('applies the same limits to graphql-ws operations', async () => {
    const client = wsClient(ctx.api.url);
    const aliases = Array.from({ length: 16 }, (_, i) => `a${i}: latestPrice(symbol: "AAPL") { price }`).join(' ');
    const over = collect(client, `{ ${aliases} }`);
    const costly = collect(client, `query { ticks(symbol: "AAPL", limit: 10000) { time price volume tickId } }`);
    await waitFor(() => over.errors.length > 0 && costly.errors.length > 0, 10_000, 'both refused');
    expect(JSON.stringify(over.errors)).toMatch(/Aliases limit/);
    expect(JSON.stringify(costly.errors)).toMatch(/exceeds the budget/);
    const fine = collect<{ latestPrice: { price: number } }>(client, `{ latestPrice(symbol: "AAPL") { price } }`);
    await waitFor(() => fine.items.length > 0, 10_000, 'a normal query over the socket');
    expect(fine.items[0]!.latestPrice.price).toBe(228.5);
    await client.dispose();
  });
});

describe('subscriptions', () => {
  it('caps the subscriptions open at once, and frees a slot when one ends', async () => {
    const capped = await ctx.startApi({ limits: { maxSubscriptions: 2 } });
    const client = wsClient(capped.url);
    try {
      const query = `subscription { priceUpdated(symbols: ["AAPL"]) { price } }`;
      const first = collect(client, query);
      const second = collect(client, query);
      await waitFor(() => first.items.length > 0 && second.items.length > 0, 10_000, 'two subscriptions');
      const third = collect(client, query);
      await waitFor(() => third.errors.length > 0, 10_000, 'the third refused');
      expect(JSON.stringify(third.errors)).toMatch(/SERVICE_UNAVAILABLE/);
      first.dispose();
      await waitFor(async () => {
        const again = collect(client, query);
        await new Promise((r) => setTimeout(r, 200));
        again.dispose();
        return again.items.length > 0;
      }, 10_000, 'a slot freed by the ended subscription');
      // over SSE too (the cap is process-wide): one slot is in use by `second`, one is free
      const ctrl = new AbortController();
      const sse = await fetch(`${capped.url}/graphql?query=${encodeURIComponent(query)}`, { headers: { accept: 'text/event-stream' }, signal: ctrl.signal });
      expect(sse.status).toBe(200);
      ctrl.abort();
    } finally {
      await client.dispose();
      await capped.close();
    }
  });
});

describe('WebSocket connections', () => {
  it('caps the sockets open at once with 503, and accepts again when one closes', async () => {
    const capped = await ctx.startApi({ limits: { maxWebSocketConnections: 2 } });
    const url = capped.url.replace(/^http/, 'ws') + '/graphql';
    const open = () =>
      new Promise<{ ws: WebSocket; status?: number }>((resolve) => {
        const ws = new WebSocket(url, 'graphql-transport-ws');
        ws.once('open', () => resolve({ ws }));
        ws.once('unexpected-response', (_req, res) => resolve({ ws, status: res.statusCode }));
        ws.once('error', () => undefined);
      });
    try {
      const first = await open();
      const second = await open();
      expect([first.status, second.status]).toEqual([undefined, undefined]);
      expect((await open()).status).toBe(503);
      first.ws.close();
      await waitFor(async () => {
        const again = await open();
        again.ws.close();
        return again.status === undefined;
      }, 10_000, 'a socket accepted once one closed');
      second.ws.close();
    } finally {
      await capped.close();
    }
  });
});

describe('input errors are BAD_USER_INPUT, never internal', () => {
  const candles = (arg: string) => `{ candles(symbol: "AAPL", granularity: MINUTE, ${arg}, limit: 5) { time } }`;

  it('accepts ISO-8601 date-times with an offset only', async () => {
    for (const value of ['"2026-11-24T10:00:00Z"', '"2026-11-24T11:00:00.123456+01:00"', '"2026-11-24t10:00z"']) {
      const res = await gql(ctx.api.url, candles(`before: ${value}`));
      expect(res.errors, value).toBeUndefined();
    }
    const bad: Array<[string, RegExp]> = [
      ['1764000000', /must be a string/],
      ['"1764000000000"', /not a valid DateTime: expected an ISO-8601 date-time with a time-zone offset/],
      ['"$1"', /not a valid DateTime/],
      ['"2026-11-24T10:00:00"', /not a valid DateTime/],
      ['"2026-11-24"', /not a valid DateTime/],
      ['"yesterday"', /not a valid DateTime/],
      ['"2026-02-30T00:00:00Z"', /no such date/],
      ['"2026-11-24T24:00:00Z"', /no such date/],
      ['"-271821-04-20T00:00:00Z"', /not a valid DateTime/],
      ['"1899-12-31T23:59:59Z"', /year must be between 1900 and 9999/],
      [`"${'9'.repeat(5000)}"`, /not a valid DateTime/],
    ];
    for (const [value, message] of bad) {
      const literal = await gql(ctx.api.url, candles(`before: ${value}`));
      expect(literal.errors?.[0]?.extensions?.code, value.slice(0, 40)).toBe('BAD_USER_INPUT');
      expect(literal.errors?.[0]?.message).toMatch(message);
      const variable = await gql(ctx.api.url, `query C($t: DateTime) { candles(symbol: "AAPL", granularity: MINUTE, before: $t, limit: 5) { time } }`, {
        t: JSON.parse(value),
      });
      expect(variable.errors?.[0]?.extensions?.code, value.slice(0, 40)).toBe('BAD_USER_INPUT');
      expect(variable.errors?.[0]?.message).toMatch(message);
      expect(JSON.stringify(literal).length).toBeLessThan(2000); // a 5,000-character literal is not echoed back
    }
    await stillServing();
  });

  it('refuses a NUL byte, overlong strings and malformed symbols as input errors', async () => {
    const cases: Array<[string, Record<string, unknown>]> = [
      [`query P($t: String) { partitions(table: $t) { name } }`, { t: 'stock_ticks\u0000; DROP' }],
      [`query P($t: String) { partitions(table: $t) { name } }`, { t: 'x'.repeat(50_000) }],
      [`query P($s: String!) { latestPrice(symbol: $s) { price } }`, { s: 'A'.repeat(50_000) }],
      [`query P($s: String!) { latestPrice(symbol: $s) { price } }`, { s: 'AAPL\u0000' }],
      [`query P($s: [String!]) { latestPrices(symbols: $s) { price } }`, { s: ['AAPL', '\u0000'] }],
      [`query P($s: String!, $f: DateTime) { ticks(symbol: $s, from: $f) { price } }`, { s: 'AAPL', f: 'now' }],
    ];
    for (const [query, variables] of cases) {
      const res = await gql(ctx.api.url, query, variables);
      expect(res.errors?.[0]?.extensions?.code, query).toBe('BAD_USER_INPUT');
      expect(JSON.stringify(res).length).toBeLessThan(2000);
    }
    await stillServing();
  });
});
