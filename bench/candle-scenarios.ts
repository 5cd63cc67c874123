import pg from 'pg';
import { TickStreamer } from '../src/ticks/streamer.ts';
import { ensureSymbols } from '../src/ticks/tick-table.ts';
import { createLogger } from '../src/logger.ts';
import { apiTypes } from '../src/db/pg-types.ts';
import { benchDatabase, percentile } from './harness.ts';

/**
 * The candle scenarios a charting front end meets, each on its own database, each timed against
 * the same answer aggregated from the raw ticks in alternating rounds (ratios from one run):
 *  (d) sizes: 500 five-minute bars and 500 four-hour bars of one symbol (the API's candle_page,
 *      composed from minute and hour rollup rows) vs date_bin over the raw ticks of their window;
 *  (e) live: 500 minute bars over hours of history while the demo's stream writes 1,000 ticks/s,
 *      the rollup refresh runs every 10 s as the job does, and late ticks reopen closed minutes
 *      (the demo's own late share, plus one correction per round into an older minute of the
 *      page), end to end from a client, vs the raw aggregation of the same window.
 * Exactness is checked in a REPEATABLE READ transaction (both reads see the same ticks) before
 * any timing, and for (e) again while the stream writes.
 */

const SYMBOL = 'AAPL';
const ORIGIN = "'2000-01-01 00:00:00+00'";
const DEMO_LATE_SHARE = 0.005;
const DEMO_MAX_LATENESS_MS = 20_000;

export interface SizesOptions {
  /** Days of history of the benched symbol (500 four-hour bars need 84). */
  days: number;
  /** Ticks per second of that history. */
  ticksPerSecond: number;
  rounds: number;
  /** Served calls per round (one raw call of each kind per round). */
  servedPerRound: number;
}

export interface LiveOptions {
  /** Hours of history before the stream starts (500 minute bars need more than 8.3). */
  historyHours: number;
  historyTicksPerSecond: number;
  rounds: number;
  servedPerRound: number;
  /** Seconds between rollup refreshes while streaming (the rollup_refresh job's cadence). */
  refreshSeconds: number;
}

interface Bar {
  bucket: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  tick_count: number | string;
}

/** The served read: what the resolver of candles(symbol, granularity, multiple, limit) runs. */
const SERVED = `SELECT bucket, open, high, low, close, volume, tick_count, final
                  FROM lakets.candle_page($1::text[], $2, $3::integer, 'UTC', NULL, NULL, NULL, $4::integer, false)`;

/** The natural raw query for bars of `width` over [from, to): ordered array_agg for open/close. */
function rawQuery(width: string): string {
  return `SELECT date_bin('${width}', time, ${ORIGIN}) AS bucket,
                 (array_agg(price ORDER BY time, tick_id))[1] AS open, max(price) AS high, min(price) AS low,
                 (array_agg(price ORDER BY time DESC, tick_id DESC))[1] AS close, sum(volume) AS volume, count(*) AS tick_count
            FROM stock_ticks WHERE symbol = $1 AND time >= $2 AND time < $3
           GROUP BY 1 ORDER BY 1`;
}

function compare(served: Bar[], raw: Bar[]): { identical: boolean; bars: number; ticks: number; mismatches: string[] } {
  const mismatches: string[] = [];
  if (served.length !== raw.length) mismatches.push(`${served.length} bars served, ${raw.length} from the raw ticks`);
  for (let i = 0; i < Math.min(served.length, raw.length); i++) {
    const a = served[i]!;
    const e = raw[i]!;
    const volumeOff = a.volume === e.volume ? 0 : Math.abs(a.volume - e.volume) / Math.max(Math.abs(e.volume), 1e-300);
    if (a.bucket.getTime() !== e.bucket.getTime() || a.open !== e.open || a.high !== e.high || a.low !== e.low || a.close !== e.close ||
        Number(a.tick_count) !== Number(e.tick_count) || volumeOff > 1e-9) {
      mismatches.push(`@ ${e.bucket.toISOString()}: served ${JSON.stringify(a)} raw ${JSON.stringify(e)}`);
    }
  }
  return { identical: mismatches.length === 0, bars: served.length, ticks: served.reduce((n, b) => n + Number(b.tick_count), 0), mismatches: mismatches.slice(0, 5) };
}

/** The served page and the raw aggregation of its window, in one snapshot. */
async function exactness(client: pg.Client, granularity: string, multiple: number, width: string, widthMs: number) {
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  try {
    const served = (await client.query<Bar>(SERVED, [[SYMBOL], granularity, multiple, 500])).rows;
    if (served.length === 0) throw new Error(`no ${multiple} ${granularity} bars served`);
    const raw = (await client.query<Bar>(rawQuery(width), [SYMBOL, served[0]!.bucket, new Date(served.at(-1)!.bucket.getTime() + widthMs)])).rows;
    return compare(served, raw);
  } finally {
    await client.query('COMMIT');
  }
}

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { n: sorted.length, medianMs: round(percentile(sorted, 50)), p95Ms: round(percentile(sorted, 95)), minMs: round(sorted[0] ?? NaN) };
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function connect(url: string): Promise<pg.Client> {
  // As the API's pool connects (same type parsers, UTC session).
  const client = new pg.Client({ connectionString: url, types: apiTypes });
  await client.connect();
  await client.query("SET TimeZone = 'UTC'");
  return client;
}

/**
 * History written server-side (generate_series), a day or an hour per statement, each followed by
 * the partition manager (the first rows of a new range land in the default partition; it makes
 * the chunk and moves them), then one cascade: the rollups closed up to the last minute.
 */
async function writeHistory(client: pg.Client, from: Date, to: Date, ticksPerSecond: number, stepMs: number): Promise<number> {
  let written = 0;
  const stepMicros = Math.round(1_000_000 / ticksPerSecond);
  for (let t = from.getTime(); t < to.getTime(); t += stepMs) {
    const n = Math.floor((Math.min(stepMs, to.getTime() - t) / 1000) * ticksPerSecond);
    const { rowCount } = await client.query(
      `INSERT INTO stock_ticks (time, symbol, price, volume)
       SELECT $1::timestamptz + make_interval(secs => g * $3::double precision / 1e6), $2,
              round((150 + 25 * sin(($4 + g) / 20000.0) + 3 * random())::numeric, 4)::double precision, 1 + floor(random() * 200)
         FROM generate_series(0, $5::integer - 1) g`,
      [new Date(t), SYMBOL, stepMicros, written, n],
    );
    written += rowCount ?? 0;
    await client.query('SELECT * FROM lakets.run_partition_manager()');
  }
  return written;
}

async function cascade(client: pg.Client): Promise<number> {
  const t0 = performance.now();
  await client.query('SELECT * FROM lakets.refresh_rollup_cascade()');
  return performance.now() - t0;
}

// ---------------------------------------------------------------------------------------------
// (d) sizes

export async function benchCandleSizes(options: SizesOptions): Promise<Record<string, unknown>> {
  const bench = await benchDatabase('candle_sizes');
  const client = await connect(bench.url);
  try {
    await client.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '1 day')`);
    await ensureSymbols(client, 10);
    // History ending at yesterday's midnight (UTC): every bar closed and materialised.
    const to = new Date(Math.floor(Date.now() / 86_400_000) * 86_400_000 - 86_400_000);
    const from = new Date(to.getTime() - options.days * 86_400_000);
    const t0 = performance.now();
    const ticks = await writeHistory(client, from, to, options.ticksPerSecond, 86_400_000);
    const loadMs = performance.now() - t0;
    await client.query('VACUUM ANALYZE stock_ticks');
    const cascadeMs = await cascade(client);
    await client.query('VACUUM ANALYZE ohlcv_1min, ohlcv_1hour, ohlcv_1day');
    console.log(`(d) ${ticks} ticks over ${options.days} days in ${round(loadMs / 1000)} s; cascade ${round(cascadeMs / 1000)} s`);

    const sizes = [
      { name: 'fiveMinute', granularity: 'minute', multiple: 5, width: '5 minutes', widthMs: 300_000 },
      { name: 'fourHour', granularity: 'hour', multiple: 4, width: '4 hours', widthMs: 14_400_000 },
    ];
    const results: Record<string, unknown> = {};
    for (const size of sizes) {
      const check = await exactness(client, size.granularity, size.multiple, size.width, size.widthMs);
      if (!check.identical) throw new Error(`(d) ${size.name}: served bars differ from the raw ticks: ${JSON.stringify(check)}`);
      const served = (await client.query<Bar>(SERVED, [[SYMBOL], size.granularity, size.multiple, 500])).rows;
      const window = [SYMBOL, served[0]!.bucket, new Date(served.at(-1)!.bucket.getTime() + size.widthMs)];
      const timeServed = async () => {
        const s = performance.now();
        await client.query(SERVED, [[SYMBOL], size.granularity, size.multiple, 500]);
        return performance.now() - s;
      };
      const timeRaw = async () => {
        const s = performance.now();
        await client.query(rawQuery(size.width), window);
        return performance.now() - s;
      };
      for (let i = 0; i < 3; i++) {
        await timeServed();
        await timeRaw();
      }
      const servedMs: number[] = [];
      const rawMs: number[] = [];
      for (let r = 0; r < options.rounds; r++) {
        // Alternating which goes first, so that neither always meets the other's cache state.
        if (r % 2 === 1) rawMs.push(await timeRaw());
        for (let i = 0; i < options.servedPerRound; i++) servedMs.push(await timeServed());
        if (r % 2 === 0) rawMs.push(await timeRaw());
      }
      const s = stats(servedMs);
      const raw = stats(rawMs);
      results[size.name] = {
        bars: check.bars,
        ticksAggregatedByRaw: check.ticks,
        answersIdentical: check,
        servedMs: s,
        rawMs: raw,
        speedUp: round(raw.medianMs / s.medianMs, 1),
      };
      console.log(`(d) ${size.name}: served ${s.medianMs} ms, raw ${raw.medianMs} ms (${round(raw.medianMs / s.medianMs, 1)}x)`);
    }
    return {
      definition: `500 bars of ${SYMBOL} (candle_page, unnamed statements like the resolver) vs date_bin + ordered array_agg over the raw ticks of the same window; rounds alternate which runs first`,
      dataset: { days: options.days, ticksPerSecond: options.ticksPerSecond, ticks, loadSeconds: round(loadMs / 1000), cascadeSeconds: round(cascadeMs / 1000) },
      ...results,
      target: '>= 20x (median raw / median served)',
    };
  } finally {
    await client.end();
    await bench.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// (e) live

export async function benchCandlesLive(options: LiveOptions): Promise<Record<string, unknown>> {
  const bench = await benchDatabase('candles_live');
  const client = await connect(bench.url);
  const refresher = await connect(bench.url);
  const corrector = await connect(bench.url);
  let streamer: TickStreamer | undefined;
  let refreshing = false;
  let refreshTimer: NodeJS.Timeout | undefined;
  const refreshMs: number[] = [];
  try {
    await client.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '1 hour')`);
    await ensureSymbols(client, 10);
    const now = Date.now();
    const from = new Date(Math.floor((now - options.historyHours * 3_600_000) / 60_000) * 60_000);
    const history = await writeHistory(client, from, new Date(now - 60_000), options.historyTicksPerSecond, 3_600_000);
    await client.query('VACUUM ANALYZE stock_ticks');
    await cascade(client);
    await client.query('VACUUM ANALYZE ohlcv_1min, ohlcv_1hour, ohlcv_1day');
    console.log(`(e) ${history} ticks of history over ${options.historyHours} h`);

    // The demo's stream, and the refresh job's cadence, from here on.
    streamer = new TickStreamer(bench.url, { rate: 1000, symbols: 10, lateShare: DEMO_LATE_SHARE, maxLatenessMs: DEMO_MAX_LATENESS_MS }, createLogger('silent'));
    await streamer.start();
    refreshTimer = setInterval(() => {
      if (refreshing) return;
      refreshing = true;
      cascade(refresher).then((ms) => refreshMs.push(ms), () => undefined).finally(() => (refreshing = false));
    }, options.refreshSeconds * 1000);
    // Let a few refreshes run, so that late ticks land in closed minutes before anything is timed.
    await new Promise((r) => setTimeout(r, options.refreshSeconds * 1500));

    const checks = [await exactness(client, 'minute', 1, '1 minute', 60_000)];
    let window = (await client.query<Bar>(SERVED, [[SYMBOL], 'minute', 1, 500])).rows;
    const timeServed = async () => {
      const s = performance.now();
      window = (await client.query<Bar>(SERVED, [[SYMBOL], 'minute', 1, 500])).rows;
      return performance.now() - s;
    };
    // The raw query gets the served page's window (an advantage: it need not find where 500 bars start).
    const timeRaw = async () => {
      const s = performance.now();
      await client.query(rawQuery('1 minute'), [SYMBOL, window[0]!.bucket, new Date(Date.now() + 86_400_000)]);
      return performance.now() - s;
    };
    const correct = async () => {
      // A correction into a closed minute of the page: it reopens that minute until the next refresh.
      const minute = window[Math.floor(Math.random() * Math.max(1, window.length - 20))]!.bucket;
      await corrector.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ($1::timestamptz + interval '17 seconds', $2, 150, 1)`, [minute, SYMBOL]);
    };
    for (let i = 0; i < 3; i++) {
      await timeServed();
      await timeRaw();
    }
    const servedMs: number[] = [];
    const rawMs: number[] = [];
    const { rows: [before] } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM lakets.rollup_invalidations WHERE rollup = 'ohlcv_1min' AND key = $1`, [SYMBOL]);
    let pendingSeen = 0;
    for (let r = 0; r < options.rounds; r++) {
      await correct();
      const { rows: [p] } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM lakets.rollup_invalidations WHERE rollup = 'ohlcv_1min' AND key = $1`, [SYMBOL]);
      pendingSeen = Math.max(pendingSeen, Number(p!.n));
      if (r % 2 === 1) rawMs.push(await timeRaw());
      for (let i = 0; i < options.servedPerRound; i++) servedMs.push(await timeServed());
      if (r % 2 === 0) rawMs.push(await timeRaw());
      if (r === Math.floor(options.rounds / 2)) checks.push(await exactness(client, 'minute', 1, '1 minute', 60_000));
    }
    checks.push(await exactness(client, 'minute', 1, '1 minute', 60_000));
    const bad = checks.find((c) => !c.identical);
    if (bad) throw new Error(`(e) served minute bars differ from the raw ticks under live ingest: ${JSON.stringify(bad)}`);
    const s = stats(servedMs);
    const raw = stats(rawMs);
    console.log(`(e) live: served ${s.medianMs} ms, raw ${raw.medianMs} ms (${round(raw.medianMs / s.medianMs, 1)}x)`);
    return {
      definition:
        `candles(${SYMBOL}, MINUTE, limit 500) via candle_page from one client while TickStreamer writes 1,000 ticks/s over 10 symbols ` +
        `(${DEMO_LATE_SHARE * 100} % late by up to ${DEMO_MAX_LATENESS_MS / 1000} s), the cascade refresh runs every ${options.refreshSeconds} s, ` +
        'and each round first writes a correction into a closed minute of the page; vs the raw aggregation of the page window',
      history: { hours: options.historyHours, ticksPerSecond: options.historyTicksPerSecond, ticks: history },
      stream: { ...streamer.stats },
      refreshes: stats(refreshMs),
      pendingMinutesOfSymbol: { atStart: Number(before!.n), maxSeen: pendingSeen },
      answersIdentical: checks.map(({ identical, bars, ticks }) => ({ identical, bars, ticks })),
      servedMs: s,
      rawMs: raw,
      speedUp: round(raw.medianMs / s.medianMs, 1),
      target: '>= 20x (median raw / median served, under live ingest)',
    };
  } finally {
    clearInterval(refreshTimer);
    await streamer?.stop();
    while (refreshing) await new Promise((r) => setTimeout(r, 50));
    await corrector.end();
    await refresher.end();
    await client.end();
    await bench.stop();
  }
}
