import pg from 'pg';
import { copyTicks, ensureSymbols } from '../src/ticks/tick-table.ts';
import { TickGenerator, nowMicros, type Tick } from '../src/ticks/generator.ts';
import { startApi } from '../src/main.ts';
import { createLogger } from '../src/logger.ts';
import { DEFAULT_API_STATEMENT_TIMEOUT_MS } from '../src/config.ts';
import { TickStreamer } from '../src/ticks/streamer.ts';
import { benchDatabase, percentile } from './harness.ts';

export interface IngestOptions {
  rows: number;
  batchSize: number;
  latencySeconds: number;
  symbols: number;
  /**
   * Which of stock_ticks' triggers are on: 'foundation' (chunk stamps, LVC), 'rollups' (plus rollup
   * invalidation), 'all' (plus the change feed's mirror).
   */
  triggerSet: 'foundation' | 'rollups' | 'all';
}

/**
 * The least ratio each set must keep against a table without triggers (README, "Tests, typecheck,
 * benchmarks"): every trigger on, the write path may cost at most 40 % of plain COPY speed. Part of
 * that is COPY's own: a partitioned table with a transition-table trigger is written row by row
 * instead of in multi-row batches.
 */
const TARGET: Record<IngestOptions['triggerSet'], number> = { foundation: 0.6, rollups: 0.6, all: 0.6 };

/** Trigger name prefixes switched off per trigger set. */
const OFF: Record<IngestOptions['triggerSet'], string[]> = {
  foundation: ['lakets_cdf_', 'lakets_rollup_inv_'],
  rollups: ['lakets_cdf_'],
  all: [],
};

/**
 * Ingest throughput: COPY into stock_ticks with a set of the product's triggers on, against COPY
 * into an identical partitioned table (same columns, constraints, index and chunk ranges) with
 * no triggers, in the same run, batches interleaved so that both see the same machine state.
 * Then latestPrice latency over HTTP while stream_ticks writes at the default rate.
 */
export async function benchIngest(options: IngestOptions): Promise<Record<string, unknown>> {
  const bench = await benchDatabase('ingest');
  const client = new pg.Client({ connectionString: bench.url });
  await client.connect();
  try {
    // 10-minute chunks covering the last hour: every tick routes to a real chunk, not the default.
    await client.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '10 minutes')`);
    for (const prefix of OFF[options.triggerSet]) {
      const { rows: off } = await client.query<{ tgname: string }>(
        `SELECT tgname FROM pg_trigger WHERE tgrelid = 'stock_ticks'::regclass AND NOT tgisinternal AND starts_with(tgname, $1)`,
        [prefix],
      );
      for (const t of off) await client.query(`ALTER TABLE stock_ticks DISABLE TRIGGER ${pg.escapeIdentifier(t.tgname)}`);
    }
    await client.query(`INSERT INTO stock_ticks (time, symbol, price, volume)
                        SELECT now() - (g * interval '10 minutes'), 'AAPL', 1, 1 FROM generate_series(0, 7) g`);
    await client.query('SELECT lakets.run_partition_manager()');
    await client.query(`CREATE TABLE bench_plain_ticks (LIKE stock_ticks INCLUDING ALL) PARTITION BY RANGE (time)`);
    const { rows: chunks } = await client.query<{ range_start: Date; range_end: Date }>(
      `SELECT range_start, range_end FROM lakets.chunks WHERE status = 'active' ORDER BY range_start`,
    );
    for (const [i, c] of chunks.entries()) {
      await client.query(
        `CREATE TABLE bench_plain_ticks_${i} PARTITION OF bench_plain_ticks FOR VALUES FROM ('${c.range_start.toISOString()}') TO ('${c.range_end.toISOString()}')`,
      );
    }
    await client.query(`CREATE TABLE bench_plain_ticks_default PARTITION OF bench_plain_ticks DEFAULT`);
    const { rows: triggers } = await client.query<{ tgname: string }>(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = 'stock_ticks'::regclass AND NOT tgisinternal AND tgenabled <> 'D' ORDER BY tgname`,
    );

    const specs = await ensureSymbols(client, options.symbols);
    const gen = new TickGenerator(specs, { seed: 11, lateShare: 0.005, maxLatenessMs: 20_000 });
    const batches: Tick[][] = [];
    const span = 50n * 60n * 1_000_000n; // ticks spread over the last 50 minutes
    const start = nowMicros() - span;
    const count = Math.ceil(options.rows / options.batchSize);
    for (let b = 0; b < count; b++) {
      const end = start + (span * BigInt(b + 1)) / BigInt(count);
      batches.push(gen.batch(options.batchSize, end, span / BigInt(count)));
    }
    // Warm-up: one batch each, not timed.
    await copyTicks(client, batches[0]!, 'stock_ticks');
    await copyTicks(client, batches[0]!, 'bench_plain_ticks');

    let triggeredMs = 0;
    let plainMs = 0;
    for (const [i, batch] of batches.entries()) {
      // Alternate which side goes first so that neither always runs on a warmer cache.
      const order: Array<'stock_ticks' | 'bench_plain_ticks'> = i % 2 === 0 ? ['stock_ticks', 'bench_plain_ticks'] : ['bench_plain_ticks', 'stock_ticks'];
      for (const table of order) {
        const t0 = performance.now();
        await copyTicks(client, batch, table);
        const ms = performance.now() - t0;
        if (table === 'stock_ticks') triggeredMs += ms;
        else plainMs += ms;
      }
    }
    const rows = count * options.batchSize;
    const triggeredRate = rows / (triggeredMs / 1000);
    const plainRate = rows / (plainMs / 1000);

    // latestPrice latency over HTTP, idle and while stream_ticks runs at 1,000 ticks/s.
    const logger = createLogger('silent');
    const api = await startApi({
      apiUrl: bench.url,
      listenUrl: bench.url,
      port: 0,
      logger,
      security: { apiTokens: [], allowAnonymous: false },
      statementTimeoutMs: DEFAULT_API_STATEMENT_TIMEOUT_MS,
    });
    const query = JSON.stringify({ query: '{ latestPrice(symbol: "AAPL") { price time } }' });
    const measure = async (seconds: number) => {
      const samples: number[] = [];
      const deadline = performance.now() + seconds * 1000;
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const res = await fetch(`${api.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: query });
        await res.json();
        samples.push(performance.now() - t0);
      }
      samples.sort((a, b) => a - b);
      return { requests: samples.length, p50Ms: round(percentile(samples, 50)), p99Ms: round(percentile(samples, 99)) };
    };
    await measure(1); // warm-up
    const idle = await measure(options.latencySeconds / 2);
    const streamer = new TickStreamer(bench.url, { rate: 1000, symbols: 10 }, logger);
    await streamer.start();
    await new Promise((r) => setTimeout(r, 1000));
    const underIngest = await measure(options.latencySeconds);
    await streamer.stop();
    await api.close();

    return {
      dataset: { rows, batchSize: options.batchSize, symbols: options.symbols, span: '50 minutes in 10-minute chunks', lateShare: 0.005 },
      triggers: triggers.map((t) => t.tgname),
      withTriggers: { rowsPerSecond: Math.round(triggeredRate), seconds: round(triggeredMs / 1000) },
      plainCopy: { rowsPerSecond: Math.round(plainRate), seconds: round(plainMs / 1000) },
      ratio: round(triggeredRate / plainRate, 3),
      triggerSet: options.triggerSet,
      target: TARGET[options.triggerSet],
      latestPriceLatency: {
        idle,
        whileIngesting: { ...underIngest, ingestRate: 1000, ticksWritten: streamer.stats.ticksWritten },
      },
    };
  } finally {
    await client.end();
    await bench.stop();
  }
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
