import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { startApi } from '../src/main.ts';
import { createLogger } from '../src/logger.ts';
import { DEFAULT_API_STATEMENT_TIMEOUT_MS } from '../src/config.ts';
import { OPERATION_LIMITS } from '../src/server/operation-limits.ts';
import { benchDatabase, percentile } from './harness.ts';

export interface AbuseOptions {
  /** Concurrent abusive clients. */
  clients: number;
  /** Alternating rounds: idle (baseline) then under abuse. */
  rounds: number;
  /** Seconds of latestPrice sampling per phase. */
  seconds: number;
  /** Days of history seeded for 10 symbols, one tick per `stepSeconds` each. */
  days: number;
  stepSeconds: number;
}

const MINUTE_MS = 60_000;

/**
 * The most expensive operations the limits allow, each priced just under the budget:
 *  - two candle windows of ~10,000 minute buckets each with fill: PREVIOUS (the database aggregates
 *    every bucket of a week; one bar comes back);
 *  - ticks(limit: 10000) with one field (10,000 rows read and returned).
 */
function abusiveOperations(now: number): Array<{ name: string; query: string }> {
  // Each alias costs its buckets plus one bar of one field: two of them fit the budget.
  const buckets = Math.min(9_990, Math.floor(OPERATION_LIMITS.maxCost / 2) - 1);
  const end = Math.floor(now / MINUTE_MS) * MINUTE_MS;
  const to = new Date(end).toISOString();
  const from = new Date(end - buckets * MINUTE_MS).toISOString();
  const window = (alias: string, symbol: string) =>
    `${alias}: candles(symbol: "${symbol}", granularity: MINUTE, from: "${from}", to: "${to}", limit: 1, fill: PREVIOUS) { close }`;
  return [
    { name: 'candleWindows', query: `{ ${window('a', 'AAPL')} ${window('b', 'MSFT')} }` },
    { name: 'ticks10000', query: `{ ticks(symbol: "NVDA", from: "${from}", to: "${to}", limit: 10000) { price } }` },
  ];
}

interface Sample {
  requests: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;

async function post(url: string, query: string): Promise<{ ms: number; body: { data?: unknown; errors?: Array<{ extensions?: { code?: string } }> } }> {
  const t0 = performance.now();
  const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
  const body = (await res.json()) as { data?: unknown; errors?: Array<{ extensions?: { code?: string } }> };
  return { ms: performance.now() - t0, body };
}

async function sampleLatestPrice(url: string, seconds: number): Promise<number[]> {
  const samples: number[] = [];
  const deadline = performance.now() + seconds * 1000;
  while (performance.now() < deadline) {
    const { ms, body } = await post(url, '{ latestPrice(symbol: "AAPL") { price time } }');
    if (body.errors) throw new Error(`latestPrice failed: ${JSON.stringify(body.errors)}`);
    samples.push(ms);
  }
  return samples;
}

function summary(samples: number[]): Sample {
  const sorted = [...samples].sort((a, b) => a - b);
  return { requests: sorted.length, p50Ms: round(percentile(sorted, 50), 2), p99Ms: round(percentile(sorted, 99), 2), maxMs: round(sorted.at(-1) ?? NaN, 2) };
}

/**
 * npm run bench -- abuse: another client's latestPrice latency, idle and while `clients` clients
 * send the most expensive operations the limits allow back to back, in alternating rounds within
 * one run (the baseline shares the machine's state with the measurement).
 */
export async function benchAbuse(options: AbuseOptions): Promise<Record<string, unknown>> {
  const bench = await benchDatabase('abuse');
  const client = new pg.Client({ connectionString: bench.url });
  await client.connect();
  const logger = createLogger('warn');
  try {
    await client.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '1 day')`);
    const t0 = performance.now();
    const { rowCount } = await client.query(
      `INSERT INTO stock_ticks (time, symbol, price, volume)
       SELECT now() - make_interval(secs => g * $2::int) - interval '1 second', a.symbol, a.base_price * (1 + 0.01 * sin(g / 50.0)), 1 + g % 7
         FROM generate_series(0, ($1::int * 86400 / $2::int) - 1) g, (SELECT symbol, base_price FROM stock_assets ORDER BY symbol LIMIT 10) a`,
      [options.days, options.stepSeconds],
    );
    await client.query('SELECT lakets.run_partition_manager()');
    await client.query('ANALYZE stock_ticks');
    const seedSeconds = round((performance.now() - t0) / 1000);

    const api = await startApi({ apiUrl: bench.url, listenUrl: bench.url, port: 0, logger, security: { apiTokens: [], allowAnonymous: false }, statementTimeoutMs: DEFAULT_API_STATEMENT_TIMEOUT_MS });
    const operations = abusiveOperations(Date.now());
    // Each must be accepted: the point is the worst the limits let through.
    const accepted: Record<string, number> = {};
    for (const op of operations) {
      const { ms, body } = await post(api.url, op.query);
      if (body.errors) throw new Error(`${op.name} was refused: ${JSON.stringify(body.errors)}`);
      accepted[op.name] = round(ms);
    }

    const idle: number[] = [];
    const abused: number[] = [];
    const rounds: Array<{ idle: Sample; underAbuse: Sample; eventLoopDelayMs: { p50: number; p99: number; max: number } }> = [];
    const outcomes = { completed: 0, errors: {} as Record<string, number> };
    await sampleLatestPrice(api.url, 1); // warm-up
    for (let r = 0; r < options.rounds; r++) {
      const idleRound = await sampleLatestPrice(api.url, options.seconds);
      let stop = false;
      // A fresh monitor per round: a re-enabled one would count the idle phase as one long delay.
      const delay = monitorEventLoopDelay({ resolution: 5 });
      delay.enable();
      const abusers = Array.from({ length: options.clients }, async (_, i) => {
        let n = i;
        while (!stop) {
          const op = operations[n++ % operations.length]!;
          const { body } = await post(api.url, op.query);
          if (body.errors) {
            const code = body.errors[0]?.extensions?.code ?? 'unknown';
            outcomes.errors[code] = (outcomes.errors[code] ?? 0) + 1;
          } else outcomes.completed++;
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 1000)); // the abuse is in full swing
      delay.reset();
      const abusedRound = await sampleLatestPrice(api.url, options.seconds);
      stop = true;
      await Promise.all(abusers);
      delay.disable();
      idle.push(...idleRound);
      abused.push(...abusedRound);
      const ms = (ns: number) => round(ns / 1e6, 2);
      rounds.push({
        idle: summary(idleRound),
        underAbuse: summary(abusedRound),
        eventLoopDelayMs: { p50: ms(delay.percentile(50)), p99: ms(delay.percentile(99)), max: ms(delay.max) },
      });
    }
    await api.close();

    const underAbuse = summary(abused);
    return {
      dataset: { ticks: rowCount, symbols: 10, days: options.days, oneTickEverySeconds: options.stepSeconds, seedSeconds },
      limits: OPERATION_LIMITS,
      abuse: {
        clients: options.clients,
        operations: operations.map((o) => o.query),
        singleRunMs: accepted,
        operationsCompleted: outcomes.completed,
        operationErrors: outcomes.errors,
        worstEventLoopDelayUnderAbuseMs: {
          p99: Math.max(...rounds.map((r) => r.eventLoopDelayMs.p99)),
          max: Math.max(...rounds.map((r) => r.eventLoopDelayMs.max)),
        },
      },
      latestPrice: { idle: summary(idle), underAbuse, rounds },
      target: 'latestPrice p99 under abuse < 100 ms',
      met: underAbuse.p99Ms < 100,
    };
  } finally {
    await client.end();
    await bench.stop();
  }
}
