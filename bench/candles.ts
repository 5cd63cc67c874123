import pg from 'pg';
import { TickStreamer } from '../src/ticks/streamer.ts';
import { copyTicks, ensureSymbols } from '../src/ticks/tick-table.ts';
import { createLogger } from '../src/logger.ts';
import { TickGenerator, nowMicros, type Tick } from '../src/ticks/generator.ts';
import { benchDatabase, percentile } from './harness.ts';
import { benchIngest } from './ingest.ts';
import { apiTypes } from '../src/db/pg-types.ts';
import type { CandleRow } from '../src/services/candles.ts';

export interface CandlesOptions {
  /** Symbols of the dataset (1 tick/s each over one UTC day). */
  symbols: number;
  /** COPY batch size of the load. */
  batchSize: number;
  /** Rounds of the read comparison; each round = `candlesPerRound` rollup reads + one of each raw query. */
  readRounds: number;
  candlesPerRound: number;
  /** Rounds of "10 s of ingest then one incremental refresh". */
  refreshRounds: number;
  /** Rounds of each full rebuild. */
  rebuildRounds: number;
  /** Ingest-ratio bench (c). */
  ingestRows: number;
  ingestSeconds: number;
}

const DAY_MICROS = 86_400n * 1_000_000n;
/** The demo stream's late ticks (TickGenerator's defaults): share, and the most a tick is back-dated. */
const DEMO_LATE_SHARE = 0.005;
const DEMO_MAX_LATENESS_MS = 20_000;
const SYMBOL = 'AAPL';

/**
 * The natural SQL a user would write to get minute candles from the raw ticks: open/close by
 * (time, tick_id) with ordered array_agg. Served by the (symbol, time) index, pruned to the day's
 * chunk. Same bucket origin and bounds as lakets.candles (bucket starts in [from, to)).
 */
const RAW_ARRAY_AGG = `
  SELECT date_bin('1 minute', time, '2000-01-01 00:00:00+00') AS bucket,
         (array_agg(price ORDER BY time, tick_id))[1] AS open, max(price) AS high, min(price) AS low,
         (array_agg(price ORDER BY time DESC, tick_id DESC))[1] AS close,
         sum(volume) AS volume, count(*) AS tick_count
    FROM stock_ticks
   WHERE symbol = $1 AND time >= $2 AND time < $3
   GROUP BY 1
   ORDER BY 1`;

/** The same with the product's own first/last aggregates (ties on time broken by tick_id). */
const RAW_FIRST_LAST = `
  SELECT date_bin('1 minute', time, '2000-01-01 00:00:00+00') AS bucket,
         lakets.first(price, time, tick_id) AS open, max(price) AS high, min(price) AS low,
         lakets.last(price, time, tick_id) AS close,
         sum(volume) AS volume, count(*) AS tick_count
    FROM stock_ticks
   WHERE symbol = $1 AND time >= $2 AND time < $3
   GROUP BY 1
   ORDER BY 1`;

/**
 * Not a contender: the same 1,440 stored rows read straight from the minute table, i.e. the cost
 * of shipping the answer to the client, which every variant pays (the floor of any read).
 */
const TABLE_READ = `SELECT bucket, open, high, low, close, volume, tick_count FROM ohlcv_1min WHERE symbol = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket`;

/** The served read (what the GraphQL resolver runs). */
const ROLLUP = `SELECT bucket, open, high, low, close, volume, tick_count, final FROM lakets.candles($1, 'minute', $2, $3)`;

/** A bar as both the served read and the raw queries return it (the raw ones without `final`). */
type Bar = Omit<CandleRow, 'final' | 'filled'> & { final?: boolean };

/**
 * Candles benchmark, on one symbol-day at 1 tick/s per symbol (docs/ARCHITECTURE.md §12, H14):
 *  (a) lakets.candles(MINUTE) over one day vs the same candles aggregated from the raw ticks;
 *  (b) one incremental cascade refresh after 10 s of ingest at 1,000 ticks/s vs full rebuilds;
 *  (c) the ingest ratio (bench/ingest.ts) with the rollup invalidation triggers on stock_ticks.
 */
export async function benchCandles(options: CandlesOptions): Promise<Record<string, unknown>> {
  const report: Record<string, unknown> = {};
  const bench = await benchDatabase('candles');
  // Connection set up as the API's pool sets up its own (src/db/pool.ts): same type parsers,
  // UTC session; the raw baseline runs on the same connection.
  const client = new pg.Client({ connectionString: bench.url, types: apiTypes });
  await client.connect();
  await client.query("SET TimeZone = 'UTC'");
  try {
    // ---------------------------------------------------------------------------------------
    // Dataset: the full UTC day two days ago, 1 tick/s per symbol on average, in 1-day chunks.
    const today = (nowMicros() / DAY_MICROS) * DAY_MICROS;
    const dayStart = today - 2n * DAY_MICROS;
    const dayEnd = dayStart + DAY_MICROS;
    const from = new Date(Number(dayStart / 1000n));
    const to = new Date(Number(dayEnd / 1000n));
    const totalTicks = options.symbols * 86_400;

    await client.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '1 day')`);
    const specs = await ensureSymbols(client, options.symbols);
    const gen = new TickGenerator(specs, { seed: 3, lateShare: 0.005, maxLatenessMs: 20_000 });
    const perSecond = BigInt(options.symbols); // ticks per second over all symbols
    const batches: Tick[][] = [];
    for (let done = 0; done < totalTicks; done += options.batchSize) {
      const n = Math.min(options.batchSize, totalTicks - done);
      const end = dayStart + ((BigInt(done + n) * 1_000_000n) / perSecond);
      const span = (BigInt(n) * 1_000_000n) / perSecond;
      const batch = gen.batch(n, end, span);
      // Late/jittered ticks of the first batch and the clamp at the end must not leave the day.
      for (const t of batch) {
        if (t.timeMicros < dayStart) t.timeMicros = dayStart;
        if (t.timeMicros >= dayEnd) t.timeMicros = dayEnd - 1n;
      }
      batches.push(batch);
    }
    const t0 = performance.now();
    // The first batch lands in the default partition; the manager creates the day's chunk and
    // moves it there, so the rest of the day COPYs straight into its chunk.
    await copyTicks(client, batches[0]!);
    const { rows: [pm] } = await client.query<{ chunks_created: number; rows_moved: string }>(
      'SELECT * FROM lakets.run_partition_manager()',
    );
    for (const batch of batches.slice(1)) await copyTicks(client, batch);
    const loadMs = performance.now() - t0;
    // Let the 864k generated ticks go before anything is timed: a server does not carry them,
    // and a heap that size slows every GC pause of the read measurement.
    batches.length = 0;
    const { rows: [counts] } = await client.query<{ day: string; symbol: string; chunks: string; in_default: string }>(
      `SELECT (SELECT count(*) FROM stock_ticks WHERE time >= $2 AND time < $3) AS day,
              (SELECT count(*) FROM stock_ticks WHERE symbol = $1 AND time >= $2 AND time < $3) AS symbol,
              (SELECT count(*) FROM lakets.chunks WHERE table_name = 'stock_ticks' AND range_start < $3 AND range_end > $2) AS chunks,
              (SELECT count(*) FROM stock_ticks_default) AS in_default`,
      [SYMBOL, from, to],
    );
    await client.query('VACUUM ANALYZE stock_ticks');

    // Materialise the day: one full cascade over the log the load wrote.
    const initial = await timedCascade(client);
    await client.query('VACUUM ANALYZE ohlcv_1min, ohlcv_1hour, ohlcv_1day');
    report.dataset = {
      day: `${from.toISOString()} .. ${to.toISOString()} (UTC, two days ago)`,
      symbols: options.symbols,
      ticksPerSecondPerSymbol: 1,
      ticks: Number(counts!.day),
      benchedSymbol: SYMBOL,
      benchedSymbolTicks: Number(counts!.symbol),
      copyBatchSize: options.batchSize,
      copyBatches: batches.length,
      lateShare: 0.005,
      chunkInterval: '1 day',
      dayChunks: Number(counts!.chunks),
      rowsLeftInDefaultPartition: Number(counts!.in_default),
      partitionManager: { chunksCreated: pm!.chunks_created, rowsMoved: Number(pm!.rows_moved) },
      loadSeconds: round(loadMs / 1000),
      loadRowsPerSecond: Math.round(Number(counts!.day) / (loadMs / 1000)),
      initialCascade: initial,
    };
    console.log(`loaded ${counts!.day} ticks in ${round(loadMs / 1000)} s; initial cascade ${initial.ms} ms`);

    // ---------------------------------------------------------------------------------------
    // (a) reads
    report.read = await measureReads(client, from, to, options);
    console.log('(a) done');

    // ---------------------------------------------------------------------------------------
    // (b) incremental refresh after 10 s of ingest vs full rebuilds
    report.refresh = await measureRefresh(client, bench.url, options);
    console.log('(b) done');

    // The rollups must still be exact after all of that.
    report.finalCheck = await compareAnswers(client, from, to);
  } finally {
    await client.end();
    await bench.stop();
  }

  // -----------------------------------------------------------------------------------------
  // (c) the ingest ratio (bench/ingest.ts) with the rollup invalidation triggers added (LVC, chunk
  // stamps, invalidation: the change feed's mirror off), and for reference with every trigger on.
  const ingest = await benchIngest({ rows: options.ingestRows, batchSize: options.batchSize, latencySeconds: options.ingestSeconds, symbols: 10, triggerSet: 'rollups' });
  const ingestRatio = ingest.ratio as number;
  const everyTrigger = await benchIngest({ rows: options.ingestRows, batchSize: options.batchSize, latencySeconds: 1, symbols: 10, triggerSet: 'all' });
  report.ingest = {
    ...ingest, target: 0.55, targetMet: ingestRatio >= 0.55,
    withEveryTrigger: { triggers: everyTrigger.triggers, ratio: everyTrigger.ratio, note: 'the change feed mirror too (target >= 0.45)' },
  };
  console.log('(c) done');

  const read = report.read as { speedUp: { median: number; medianPrepared: number; medianServerOnly: number } };
  const refresh = report.refresh as { ratio: { vsFasterFullRebuild: number } };
  report.summary = {
    readSpeedUp: {
      value: read.speedUp.median, target: 20, met: read.speedUp.median >= 20,
      prepared: read.speedUp.medianPrepared, serverOnly: read.speedUp.medianServerOnly,
    },
    incrementalOverFullRebuild: { value: refresh.ratio.vsFasterFullRebuild, target: 0.05, met: refresh.ratio.vsFasterFullRebuild <= 0.05 },
    ingestRatio: { value: ingestRatio, target: 0.55, met: ingestRatio >= 0.55 },
  };
  return report;
}

// ---------------------------------------------------------------------------------------------

async function measureReads(client: pg.Client, from: Date, to: Date, options: CandlesOptions): Promise<Record<string, unknown>> {
  const params = [SYMBOL, from, to];
  const check = await compareAnswers(client, from, to);
  if (!check.identical) throw new Error(`candles and the raw aggregation differ: ${JSON.stringify(check)}`);

  // What is timed, per call, from this client:
  //  * unnamed: unnamed parameterised statements, planned on every call (how the GraphQL resolver
  //    sends them); the rows are shipped and parsed into JS values — the headline figure;
  //  * prepared: the same through named prepared statements (plans cached by the server);
  //  * serverOnly: `SELECT count(*) FROM (<query>) q WHERE q IS NOT NULL` — every column of every
  //    row computed, nothing shipped: the work of the database alone.
  const serverOnly = (sql: string) => `SELECT count(*)::int AS n FROM (${sql}) q WHERE q IS NOT NULL`;
  type Mode = 'unnamed' | 'prepared' | 'serverOnly';
  const queries = { rollup: ROLLUP, rawArrayAgg: RAW_ARRAY_AGG, rawFirstLast: RAW_FIRST_LAST, tableReadFloor: TABLE_READ } as const;
  type Name = keyof typeof queries;
  const samples = new Map<string, number[]>();
  const time = async (name: Name, mode: Mode) => {
    const text = mode === 'serverOnly' ? serverOnly(queries[name]) : queries[name];
    const config: pg.QueryConfig = mode === 'prepared' ? { name: `bench_${name}`, text, values: params } : { text, values: params };
    const t0 = performance.now();
    const res = await client.query(config);
    const ms = performance.now() - t0;
    const n = mode === 'serverOnly' ? (res.rows[0] as { n: number }).n : res.rowCount;
    if (n !== check.buckets) throw new Error(`${name}/${mode}: expected ${check.buckets} buckets, got ${n}`);
    const key = `${name}/${mode}`;
    if (!samples.has(key)) samples.set(key, []);
    samples.get(key)!.push(ms);
  };
  const modes: Mode[] = ['unnamed', 'prepared', 'serverOnly'];
  const fast: Name[] = ['rollup', 'tableReadFloor'];
  const slow: Name[] = ['rawArrayAgg', 'rawFirstLast'];

  // Warm-up (buffers, catalogue and plan caches), not timed.
  for (let i = 0; i < 6; i++) for (const mode of modes) for (const name of [...fast, ...slow]) await time(name, mode);
  samples.clear();
  // Interleaved so that every variant sees the same machine state: per round, candlesPerRound
  // calls of each fast variant, one of each raw variant (alternating their order).
  for (let r = 0; r < options.readRounds; r++) {
    for (let i = 0; i < options.candlesPerRound; i++) for (const mode of modes) for (const name of fast) await time(name, mode);
    for (const mode of modes) for (const name of r % 2 === 0 ? slow : [...slow].reverse()) await time(name, mode);
  }

  const perCallMs: Record<string, Record<string, ReturnType<typeof stats>>> = {};
  const repetitions: Record<string, number> = {};
  for (const [key, v] of samples) {
    const [name, mode] = key.split('/') as [Name, Mode];
    (perCallMs[mode] ??= {})[name] = stats(v);
    repetitions[key] = v.length;
  }
  const median = (name: Name, mode: Mode) => perCallMs[mode]![name]!.medianMs;
  const p95 = (name: Name, mode: Mode) => perCallMs[mode]![name]!.p95Ms;
  const fasterRaw: Name = median('rawArrayAgg', 'unnamed') <= median('rawFirstLast', 'unnamed') ? 'rawArrayAgg' : 'rawFirstLast';
  const speedUp = (mode: Mode) => round(median(fasterRaw, mode) / median('rollup', mode), 1);

  return {
    call: `lakets.candles('${SYMBOL}', 'minute', <day start>, <day end>) — ${check.buckets} buckets of ${check.ticks} ticks`,
    queries: {
      rollup: squash(ROLLUP),
      rawArrayAgg: squash(RAW_ARRAY_AGG),
      rawFirstLast: squash(RAW_FIRST_LAST),
      tableReadFloor: squash(TABLE_READ),
      serverOnlyWrapper: serverOnly('<query>'),
    },
    client: 'node-pg, one connection; unnamed = planned per call like the GraphQL resolver; prepared = named statements; serverOnly = nothing shipped',
    answersIdentical: check,
    repetitions,
    perCallMs,
    baseline: fasterRaw,
    speedUp: {
      median: speedUp('unnamed'),
      p95: round(p95(fasterRaw, 'unnamed') / p95('rollup', 'unnamed'), 1),
      medianVsRawArrayAgg: round(median('rawArrayAgg', 'unnamed') / median('rollup', 'unnamed'), 1),
      medianVsRawFirstLast: round(median('rawFirstLast', 'unnamed') / median('rollup', 'unnamed'), 1),
      medianPrepared: speedUp('prepared'),
      medianServerOnly: speedUp('serverOnly'),
      // No read of these 1,440 rows can beat shipping them: the plain table read bounds the ratio.
      tableReadFloorMedian: round(median(fasterRaw, 'unnamed') / median('tableReadFloor', 'unnamed'), 1),
    },
    target: '>= 20x (median per call, unnamed statements, vs the faster raw query)',
  };
}

/** lakets.candles vs the raw aggregation over the day: prices and counts exact, volume to 1e-9. */
async function compareAnswers(client: pg.Client, from: Date, to: Date) {
  const params = [SYMBOL, from, to];
  const served = (await client.query<Bar>(ROLLUP, params)).rows;
  const variants = { rawArrayAgg: (await client.query<Bar>(RAW_ARRAY_AGG, params)).rows, rawFirstLast: (await client.query<Bar>(RAW_FIRST_LAST, params)).rows };
  const mismatches: string[] = [];
  let maxVolumeRelError = 0;
  for (const [name, raw] of Object.entries(variants)) {
    if (raw.length !== served.length) mismatches.push(`${name}: ${raw.length} buckets vs ${served.length} served`);
    for (let i = 0; i < Math.min(raw.length, served.length); i++) {
      const a = served[i]!;
      const e = raw[i]!;
      if (a.bucket.getTime() !== e.bucket.getTime() || a.open !== e.open || a.high !== e.high || a.low !== e.low ||
          a.close !== e.close || a.tick_count !== e.tick_count) {
        mismatches.push(`${name} @ ${e.bucket.toISOString()}: served ${JSON.stringify(a)} raw ${JSON.stringify(e)}`);
      }
      const rel = a.volume === e.volume ? 0 : Math.abs(a.volume - e.volume) / Math.max(Math.abs(e.volume), 1e-300);
      maxVolumeRelError = Math.max(maxVolumeRelError, rel);
      if (rel > 1e-9) mismatches.push(`${name} @ ${e.bucket.toISOString()}: volume ${a.volume} vs ${e.volume}`);
    }
  }
  return {
    identical: mismatches.length === 0,
    buckets: served.length,
    ticks: served.reduce((s, b) => s + Number(b.tick_count), 0),
    allFinal: served.every((b) => b.final === true),
    maxVolumeRelError,
    rule: 'bucket, open, high, low, close, tick_count exact; volume relative error <= 1e-9',
    mismatches: mismatches.slice(0, 5),
  };
}

interface CascadeTiming {
  ms: number;
  /** Buckets recomputed from the invalidation log, per rollup. */
  buckets: Record<string, number>;
  /** Buckets that closed and were materialised, per rollup. */
  closedBuckets: Record<string, number>;
  logRows: number;
}

async function timedCascade(client: pg.Client): Promise<CascadeTiming> {
  const t0 = performance.now();
  const { rows } = await client.query<{ rollup: string; buckets: string; closed_buckets: string; log_rows: string }>(
    'SELECT rollup, buckets, closed_buckets, log_rows FROM lakets.refresh_rollup_cascade()',
  );
  const ms = performance.now() - t0;
  return {
    ms: round(ms),
    buckets: Object.fromEntries(rows.map((r) => [r.rollup, Number(r.buckets)])),
    closedBuckets: Object.fromEntries(rows.map((r) => [r.rollup, Number(r.closed_buckets)])),
    logRows: rows.reduce((s, r) => s + Number(r.log_rows), 0),
  };
}

async function measureRefresh(client: pg.Client, url: string, options: CandlesOptions): Promise<Record<string, unknown>> {
  // Start clean: nothing pending.
  await timedCascade(client);
  // The streaming scenario: the real stream_ticks as the demo runs it (1,000 ticks/s over 10
  // symbols, one COPY every 100 ms, the demo's late ticks: 0.5 % back-dated by 1 to 21 s), and one
  // cascade refresh after every 10 s of it while the stream keeps writing, as the rollup_refresh
  // job does. Six rounds = one minute, so every phase of a minute is seen: the refresh that closes
  // the minute (it reads the minute's ticks once), the ones right after it (late ticks into the
  // minute just closed) and the quiet ones.
  const streamer = new TickStreamer(url, { rate: 1000, symbols: 10, lateShare: DEMO_LATE_SHARE, maxLatenessMs: DEMO_MAX_LATENESS_MS }, createLogger('silent'));
  const incremental: Array<CascadeTiming & { ticksSinceLastRefresh: number }> = [];
  await streamer.start();
  const started = performance.now();
  let written = 0;
  try {
    for (let r = 1; r <= options.refreshRounds; r++) {
      const wait = started + r * 10_000 - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const ticks = streamer.stats.ticksWritten - written;
      written = streamer.stats.ticksWritten;
      incremental.push({ ...(await timedCascade(client)), ticksSinceLastRefresh: ticks });
    }
  } finally {
    await streamer.stop();
  }
  const streamed = { ticks: streamer.stats.ticksWritten, batches: streamer.stats.batches, failures: streamer.stats.failures,
                     seconds: round((performance.now() - started) / 1000) };
  await timedCascade(client); // settle what the stream wrote after the last measured refresh

  // Full rebuild A — through the refresh machinery: every bucket holding data is invalidated in
  // minute, hour and day (exactly what the trigger would log had every tick just arrived), then
  // the same cascade recomputes them all (delete + insert per bucket).
  const viaRefresh: Array<CascadeTiming & { logMs: number }> = [];
  // Full rebuild B — plain bulk rebuild: TRUNCATE the three tables and INSERT … SELECT each
  // rollup's own query over its whole source (minute from the ticks, hour from minute, day from
  // hour), one transaction.
  const bulk: number[] = [];
  const { rows: defs } = await client.query<{ name: string; source: string; source_kind: string; query: string }>(
    `SELECT r.name, r.source, r.source_kind, r.query FROM lakets.rollups r JOIN lakets._rollup_levels() l USING (name) ORDER BY l.level, r.name`,
  );
  for (let r = 0; r < options.rebuildRounds; r++) {
    const t0 = performance.now();
    await client.query(`
      INSERT INTO lakets.rollup_invalidations (rollup, key, bucket)
      SELECT x.name, k.symbol, date_bin(x.bucket_interval, k.minute, '2000-01-01 00:00:00+00')
        FROM (SELECT DISTINCT symbol, date_bin('1 minute', time, '2000-01-01 00:00:00+00') AS minute FROM stock_ticks) k,
             lakets.rollups x
       GROUP BY 1, 2, 3`);
    const logMs = performance.now() - t0;
    const c = await timedCascade(client);
    viaRefresh.push({ ...c, logMs: round(logMs) });

    const t1 = performance.now();
    await client.query('BEGIN');
    await client.query(`TRUNCATE ${defs.map((d) => pg.escapeIdentifier(d.name)).join(', ')}`);
    for (const d of defs) {
      const source = d.source_kind === 'rollup' ? `public.${pg.escapeIdentifier(d.source)}` : `public.${pg.escapeIdentifier(d.source)}`;
      await client.query(`INSERT INTO public.${pg.escapeIdentifier(d.name)} SELECT * FROM (${d.query.replaceAll('{source}', source)}) q`);
    }
    await client.query('COMMIT');
    bulk.push(performance.now() - t1);
  }
  await client.query('VACUUM ANALYZE ohlcv_1min, ohlcv_1hour, ohlcv_1day');

  const incMs = incremental.map((c) => c.ms).sort((a, b) => a - b);
  const fullMs = viaRefresh.map((c) => c.ms).sort((a, b) => a - b);
  const bulkMs = [...bulk].sort((a, b) => a - b);
  const incMedian = percentile(incMs, 50);
  const fullMedian = percentile(fullMs, 50);
  const bulkMedian = percentile(bulkMs, 50);
  const { rows: [sizes] } = await client.query<{ ticks: string; m: string; h: string; d: string }>(
    `SELECT (SELECT count(*) FROM stock_ticks) AS ticks, (SELECT count(*) FROM ohlcv_1min) AS m,
            (SELECT count(*) FROM ohlcv_1hour) AS h, (SELECT count(*) FROM ohlcv_1day) AS d`,
  );
  const logRows = incremental.reduce((n, c) => n + c.logRows, 0);
  return {
    incremental: {
      definition: 'lakets.refresh_rollup_cascade() after each 10 s of the real TickStreamer as the demo runs it (1,000 ticks/s, 10 symbols, COPY every 100 ms, 0.5 % late by 1-21 s), measured while the stream keeps writing',
      stream: streamed,
      rounds: incremental,
      medianMs: round(incMedian),
      meanMs: round(incMs.reduce((a, b) => a + b, 0) / incMs.length),
      maxMs: round(incMs[incMs.length - 1]!),
      // What the write triggers put in the log while streaming (claimed by the measured refreshes).
      invalidationLogRowsPerMinute: Math.round(logRows / (streamed.seconds / 60)),
    },
    fullRebuild: {
      dataAtRebuild: { ticks: Number(sizes!.ticks), ohlcv_1min: Number(sizes!.m), ohlcv_1hour: Number(sizes!.h), ohlcv_1day: Number(sizes!.d) },
      viaRefresh: {
        definition: 'every (symbol, bucket) holding ticks invalidated in minute, hour and day, then lakets.refresh_rollup_cascade() (timed: the cascade; logMs = writing the log rows)',
        rounds: viaRefresh,
        medianMs: round(fullMedian),
      },
      bulk: {
        definition: "one transaction: TRUNCATE ohlcv_1min, ohlcv_1hour, ohlcv_1day; INSERT … SELECT each rollup's own query over its whole source, minute → hour → day",
        roundsMs: bulk.map((x) => round(x)),
        medianMs: round(bulkMedian),
      },
    },
    ratio: {
      vsFullRebuildViaRefresh: round(incMedian / fullMedian, 4),
      vsBulkRebuild: round(incMedian / bulkMedian, 4),
      vsFasterFullRebuild: round(incMedian / Math.min(fullMedian, bulkMedian), 4),
    },
    target: '<= 0.05 (median incremental cascade / median of the faster full rebuild; the rebuilds run without concurrent ingest)',
  };
}

function stats(samples: number[]) {
  const s = [...samples].sort((a, b) => a - b);
  return { medianMs: round(percentile(s, 50), 3), p95Ms: round(percentile(s, 95), 3), minMs: round(s[0]!, 3) };
}

function squash(sql: string): string {
  return sql.replace(/\s+/g, ' ').trim();
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
