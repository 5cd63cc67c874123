import pg from 'pg';
import { createLogger } from '../src/logger.ts';
import { TickStreamer } from '../src/ticks/streamer.ts';
import { POSTGRAPHILE_SCHEMA } from './api-servers.ts';
import { benchDatabase } from './harness.ts';
import { forkServer, httpLoad, median, postgresCpu, postgresCpuBetween, type ChildServer, type LoadResult } from './load.ts';

export interface ApiBenchOptions {
  /** Alternating rounds: every contender once per round per workload, in a rotating order. */
  rounds: number;
  /** Seconds of load per contender per round. */
  seconds: number;
  /** Concurrent keep-alive HTTP connections. */
  connections: number;
  /** Ticks per second streamed while measuring. */
  tickRate: number;
}

type Contender = 'hello' | 'rawpg' | 'project' | 'postgraphile';
const CONTENDERS: Contender[] = ['hello', 'rawpg', 'project', 'postgraphile'];
const SYMBOLS = ['AAPL', 'MSFT', 'NVDA', 'TSLA'];

/** What each contender is sent for each workload; every answer carries the same fields. */
function requestBody(contender: Contender, workload: 'latestPrices' | 'latestPrice'): string {
  const fields = 'symbol price volume time';
  const list = SYMBOLS.map((s) => JSON.stringify(s)).join(', ');
  const query: Record<Contender, Record<typeof workload, string>> = {
    hello: { latestPrices: '{ hello }', latestPrice: '{ hello }' },
    // The raw server ignores the query and runs the SQL with the variables.
    rawpg: { latestPrices: '{ latestPrices }', latestPrice: '{ latestPrice }' },
    project: {
      latestPrices: `{ latestPrices(symbols: [${list}]) { ${fields} } }`,
      latestPrice: `{ latestPrice(symbol: "AAPL") { ${fields} } }`,
    },
    postgraphile: {
      latestPrices: `{ latestPrices(symbols: [${list}]) { nodes { ${fields} } } }`,
      latestPrice: `{ latestPrice(symbol: "AAPL") { ${fields} } }`,
    },
  };
  const variables = workload === 'latestPrices' ? { symbols: SYMBOLS } : { symbol: 'AAPL' };
  return JSON.stringify({ query: query[contender][workload], ...(contender === 'rawpg' ? { variables } : {}) });
}

/** PostGraphile reaches the last value cache through two functions of a schema of its own. */
async function preparePostgraphileSchema(client: pg.Client): Promise<void> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS ${POSTGRAPHILE_SCHEMA}`);
  await client.query(`
    CREATE OR REPLACE FUNCTION ${POSTGRAPHILE_SCHEMA}.latest_prices(symbols text[]) RETURNS SETOF public._lvc_stock_ticks
    LANGUAGE sql STABLE AS $$ SELECT * FROM public._lvc_stock_ticks WHERE symbol = ANY (symbols) ORDER BY symbol $$`);
  await client.query(`
    CREATE OR REPLACE FUNCTION ${POSTGRAPHILE_SCHEMA}.latest_price(symbol text) RETURNS public._lvc_stock_ticks
    LANGUAGE sql STABLE AS $$ SELECT * FROM public._lvc_stock_ticks l WHERE l.symbol = latest_price.symbol $$`);
}

interface Measurement extends LoadResult {
  /** CPU of the server process per request, µs. */
  nodeCpuMicrosPerRequest: number;
  /** CPU of every Postgres process per request, µs (null when the server is not ours). */
  postgresCpuMicrosPerRequest: number | null;
}

async function measure(server: ChildServer, body: string, options: ApiBenchOptions, postgresPid: number | undefined): Promise<Measurement> {
  const url = `http://127.0.0.1:${server.port}/graphql`;
  const cpu0 = await server.cpuMicros();
  const pg0 = postgresCpu(postgresPid);
  const load = await httpLoad(url, body, options.connections, options.seconds);
  const cpu1 = await server.cpuMicros();
  const pg1 = postgresCpu(postgresPid);
  const pgMicros = postgresCpuBetween(pg0, pg1);
  const per = (micros: number) => Math.round(micros / Math.max(1, load.requests));
  return {
    ...load,
    nodeCpuMicrosPerRequest: per(cpu1 - cpu0),
    postgresCpuMicrosPerRequest: pgMicros === null ? null : per(pgMicros),
  };
}

/** Every contender must answer its query with data and no error before it is measured. */
async function check(server: ChildServer, contender: Contender, body: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${server.port}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
    body,
  });
  const json = (await res.json()) as { data?: Record<string, unknown>; errors?: unknown };
  const text = JSON.stringify(json);
  if (res.status !== 200 || json.errors || !json.data) throw new Error(`${contender} answered ${res.status}: ${text.slice(0, 500)}`);
  if (contender !== 'hello' && !/"price":\d/.test(text)) throw new Error(`${contender} answered without a price: ${text.slice(0, 500)}`);
}

/**
 * npm run bench -- api: latestPrices (4 symbols) and latestPrice throughput with `connections`
 * keep-alive connections while ticks stream at `tickRate`/s, for four contenders in alternating
 * rounds within one run: a yoga hello-world (the ceiling of any yoga server), the same SQL through
 * raw node-pg (prepared), the project, and PostGraphile 5 over the same table. Each server is a
 * child process (its CPU is its own); autocannon runs in this process.
 */
export async function benchApi(options: ApiBenchOptions): Promise<Record<string, unknown>> {
  const bench = await benchDatabase('api');
  const client = new pg.Client({ connectionString: bench.url });
  await client.connect();
  const logger = createLogger('warn');
  const servers = new Map<Contender, ChildServer>();
  let streamer: TickStreamer | undefined;
  try {
    await client.query('SELECT lakets.run_partition_manager()');
    await preparePostgraphileSchema(client);
    streamer = new TickStreamer(bench.url, { rate: options.tickRate, symbols: 10 }, logger);
    await streamer.start();
    await new Promise((resolve) => setTimeout(resolve, 1000)); // every symbol has a price
    for (const contender of CONTENDERS) servers.set(contender, await forkServer('api-servers.ts', [contender, bench.url]));

    const workloads = ['latestPrices', 'latestPrice'] as const;
    const results: Record<string, Record<Contender, Measurement[]>> = {};
    for (const workload of workloads) {
      results[workload] = { hello: [], rawpg: [], project: [], postgraphile: [] };
      for (const contender of CONTENDERS) {
        const body = requestBody(contender, workload);
        await check(servers.get(contender)!, contender, body);
        await httpLoad(`http://127.0.0.1:${servers.get(contender)!.port}/graphql`, body, options.connections, 1); // warm-up
      }
    }
    for (let round = 0; round < options.rounds; round++) {
      for (const workload of workloads) {
        // A rotating order: no contender always runs first (or right after the same neighbour).
        const order = CONTENDERS.map((_, i) => CONTENDERS[(i + round) % CONTENDERS.length]!);
        for (const contender of order) {
          const m = await measure(servers.get(contender)!, requestBody(contender, workload), options, bench.postgresPid);
          results[workload]![contender].push(m);
          console.log(`round ${round + 1} ${workload} ${contender}: ${m.requestsPerSecond} req/s, node ${m.nodeCpuMicrosPerRequest} µs/req, postgres ${m.postgresCpuMicrosPerRequest} µs/req, p99 ${m.p99Ms} ms, failures ${m.failures}`);
        }
      }
    }

    const summary: Record<string, unknown> = {};
    for (const workload of workloads) {
      const r = results[workload]!;
      const ratio = (a: Contender, b: Contender) => median(r[a].map((m, i) => m.requestsPerSecond / r[b][i]!.requestsPerSecond));
      const per = (c: Contender) => ({
        requestsPerSecond: median(r[c].map((m) => m.requestsPerSecond)),
        nodeCpuMicrosPerRequest: median(r[c].map((m) => m.nodeCpuMicrosPerRequest)),
        postgresCpuMicrosPerRequest: r[c][0]!.postgresCpuMicrosPerRequest === null ? null : median(r[c].map((m) => m.postgresCpuMicrosPerRequest!)),
        p50Ms: median(r[c].map((m) => m.p50Ms)),
        p99Ms: median(r[c].map((m) => m.p99Ms)),
        failures: r[c].reduce((n, m) => n + m.failures, 0),
        rounds: r[c].map((m) => m.requestsPerSecond),
      });
      summary[workload] = {
        contenders: Object.fromEntries(CONTENDERS.map((c) => [c, per(c)])),
        // Medians of the per-round ratios (each round's contenders ran back to back).
        projectVsPostgraphile: Math.round(ratio('project', 'postgraphile') * 100) / 100,
        projectVsHello: Math.round(ratio('project', 'hello') * 100) / 100,
        projectVsRawPg: Math.round(ratio('project', 'rawpg') * 100) / 100,
        postgraphileVsHello: Math.round(ratio('postgraphile', 'hello') * 100) / 100,
      };
    }
    return {
      setup: {
        connections: options.connections,
        secondsPerRun: options.seconds,
        rounds: options.rounds,
        tickRate: options.tickRate,
        ticksWritten: streamer.stats.ticksWritten,
        symbolsPerLatestPrices: SYMBOLS.length,
        note: 'each server in its own process; autocannon and the tick stream in the benchmark process; Postgres CPU = every process of the benchmark cluster',
      },
      ...summary,
      target: { projectVsPostgraphile: '>= 1.2 (aim 1.5)', nodeCpu: 'below PostGraphile' },
    };
  } finally {
    await streamer?.stop().catch(() => undefined);
    for (const server of servers.values()) await server.stop();
    await client.end();
    await bench.stop();
  }
}
