import { Writable } from 'node:stream';
import { pino } from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMPILE_AFTER_RUNS } from '../../src/server/hot-operations.ts';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { gql } from '../helpers/api.ts';

// A query sent often enough runs compiled (graphql-jit); its answers, errors included, must be
// those of the interpreted run.
const ctx = useTestContext('hot_operations');
const logLines: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '1 second', 'MSFT', 415.25, 3)`);
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  await ctx.startApi({ logger: pino({ level: 'info', base: undefined }, sink) });
});

/** The same request `times` times; every answer, from the first (interpreted) to the last (compiled). */
async function repeat(times: number, query: string, variables?: Record<string, unknown>) {
  const answers = [];
  for (let i = 0; i < times; i++) answers.push(await gql(ctx.api.url, query, variables));
  return answers;
}

describe('hot queries', () => {
  it('answer compiled exactly as interpreted: data, with variables and nested fields', async () => {
    const answers = await repeat(COMPILE_AFTER_RUNS + 3, `query($s: [String!]) { latestPrices(symbols: $s) { symbol price volume time asset { name } } }`, { s: ['MSFT'] });
    for (const a of answers) expect(a).toEqual(answers[0]);
    expect(answers[0]!.data.latestPrices).toEqual([{ symbol: 'MSFT', price: 415.25, volume: 3, time: expect.any(String), asset: { name: 'Microsoft Corporation' } }]);
  });

  it('refuse bad input with BAD_USER_INPUT at the field, every time', async () => {
    const answers = await repeat(COMPILE_AFTER_RUNS + 3, `{ latestPrice(symbol: "NOPE") { price } }`);
    for (const a of answers) {
      expect(a.data).toEqual({ latestPrice: null });
      expect(a.errors).toEqual([
        { message: 'unknown symbol "NOPE"', locations: [{ line: 1, column: 3 }], path: ['latestPrice'], extensions: { code: 'BAD_USER_INPUT', argument: 'symbol' } },
      ]);
    }
  });

  it('mask internal errors and log them with the request id, every time', async () => {
    await ctx.db.query('ALTER FUNCTION lakets.show_rollup_dag() RENAME TO show_rollup_dag_away');
    try {
      for (let i = 0; i < COMPILE_AFTER_RUNS + 2; i++) {
        const res = await fetch(`${ctx.api.url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: '{ watermarks { rollup } }' }),
        });
        const body = (await res.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
        expect(body.errors).toEqual([expect.objectContaining({ message: 'Unexpected error.', extensions: { code: 'INTERNAL_SERVER_ERROR' } })]);
        const requestId = res.headers.get('x-request-id');
        await waitFor(() => logLines.some((l) => l.requestId === requestId && l.msg === 'internal error in a GraphQL operation'), 5_000, 'the log line');
      }
    } finally {
      await ctx.db.query('ALTER FUNCTION lakets.show_rollup_dag_away() RENAME TO show_rollup_dag');
    }
  });

  it('run the operation asked for in a document holding several, whichever ran before', async () => {
    // The compiled code is kept per parsed document: compiling one operation of a document and
    // handing it to a request for another would answer the wrong query.
    const document = `query Prices { latestPrices(symbols: ["MSFT"]) { symbol } } query Assets { assets { symbol } }`;
    const post = (operationName: string) =>
      fetch(`${ctx.api.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: document, operationName }) }).then(
        (r) => r.json() as Promise<{ data: Record<string, unknown> }>,
      );
    for (let i = 0; i < COMPILE_AFTER_RUNS + 2; i++) expect(Object.keys((await post('Prices')).data)).toEqual(['latestPrices']);
    for (let i = 0; i < COMPILE_AFTER_RUNS + 2; i++) expect(Object.keys((await post('Assets')).data)).toEqual(['assets']);
  });

  it('stay within the cost budget: an over-budget query is refused every time', async () => {
    const answers = await repeat(COMPILE_AFTER_RUNS + 2, `{ ticks(symbol: "MSFT", limit: 10000) { price time epochMicros source } }`);
    for (const a of answers) expect(a.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', limit: 'cost' });
  });
});
