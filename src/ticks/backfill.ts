// backfill: a day of synthetic history on the first start of a new database, so that the dashboard
// is full from the first seconds (hour and day candles with many bars, chunks old enough to be tiered
// and dropped at once) instead of growing from nothing for an hour.
//
// The history goes in exactly like live ticks: COPY through the parent table, so every statement
// trigger runs (chunk stamps, last value cache, rollup invalidations, the change-feed mirror) and the
// rollups, the lake and the chunk lifecycle all see it. What differs:
// - its chunks are made first (lakets.create_chunks_for_range), so no row passes through the default
//   partition; the past gets chunks of at least an hour (see PAST_CHUNK_INTERVAL);
// - it is written in slices of history, each slice one COPY in its own transaction together with its
//   progress in lakets.backfills: bounded statements and transactions (the change-feed sync never has
//   to hold a whole day in one transaction), and a crash resumes after the last slice written;
// - it runs at most once per database: lakets.backfills remembers it, and a table that already holds
//   ticks (or has dropped chunks) is never backfilled.
// The live stream then starts from the last backfilled prices (stream-ticks.ts reads them from the
// last value cache), so the price path continues without a jump.

import type pg from 'pg';
import { TICK_TABLE, type Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { runJobOnce, type Job, type JobResult } from '../scheduler/job.ts';
import { copyTicks, ensureSymbols, latestPrices } from './tick-table.ts';
import { TickGenerator } from './generator.ts';

/** One tick every this many milliseconds per symbol: 20 ticks in every minute candle. */
const TICK_SPACING_MS = 3_000;
/** Whatever the duration and symbol count, at most this many rows (the spacing widens instead). */
const MAX_ROWS = 500_000;
/** History per COPY statement and transaction. */
const SLICE_MS = 30 * 60_000;
/** The history ends this close to now: the live stream, started right after, covers the rest. */
const CAUGHT_UP_MS = 1_000;
/**
 * The past gets chunks of at least an hour. The demo profile's one-minute chunks exist so that the
 * lifecycle of live data shows within minutes; a day of history in one-minute chunks would be 1,440
 * tables created at start-up and, being older than the drop threshold, passed one by one through the
 * durability gate and dropped again within the first minutes. Hour chunks hold the same history in 25
 * tables, are tiered and dropped within the first minute too, and the table's own interval applies
 * from now on. A table whose interval is longer than an hour keeps its interval for the past as well.
 */
const PAST_CHUNK_INTERVAL = '1 hour';
/**
 * The history's random walk moves slower than the live stream's (which is sped up so that one-minute
 * candles visibly move): at the live speed a day would wander by tens of percent; at this one a
 * day's hour candles look like a lively market and the prices stay plausible.
 */
const BACKFILL_VOLATILITY_SCALE = 6;
const SEED = 20_240_611;

/** Per-symbol spacing of the history's ticks: TICK_SPACING_MS, wider when that would exceed MAX_ROWS. */
export function tickSpacingMs(durationMs: number, symbols: number): number {
  return Math.max(TICK_SPACING_MS, Math.ceil((durationMs * symbols) / MAX_ROWS));
}

interface Ledger {
  status: 'running' | 'done' | 'skipped';
  range_start: Date;
  done_until: Date;
  rows_written: string;
}

const TABLE = TICK_TABLE;

/**
 * Claims the table's one backfill, or finds it already claimed. Serialised by an advisory lock so
 * that two processes starting at once never both write the history.
 */
async function claim(client: pg.ClientBase, durationMs: number): Promise<Ledger> {
  await client.query('BEGIN');
  try {
    await client.query(`SELECT pg_advisory_xact_lock(hashtext('lakets.backfill'), hashtext($1))`, [TABLE]);
    const { rows: known } = await client.query<Ledger>(
      'SELECT status, range_start, done_until, rows_written FROM lakets.backfills WHERE table_name = $1',
      [TABLE],
    );
    if (known[0]) {
      await client.query('COMMIT');
      return known[0];
    }
    // A table with ticks (or with history already tiered away) is not new: a backfill would put a
    // made-up day in front of real data. It is recorded as skipped, once.
    const { rows: history } = await client.query<{ has: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM public.${client.escapeIdentifier(TABLE)})
           OR EXISTS (SELECT 1 FROM lakets.chunks WHERE table_name = $1 AND status = 'dropped') AS has`,
      [TABLE],
    );
    const skipped = history[0]?.has === true;
    const { rows } = await client.query<Ledger>(
      `INSERT INTO lakets.backfills (table_name, status, range_start, done_until, finished_at, detail)
       VALUES ($1, $2::text, now() - $3::double precision * interval '1 millisecond',
               now() - $3::double precision * interval '1 millisecond',
               CASE WHEN $2::text = 'skipped' THEN clock_timestamp() END, $4)
       RETURNING status, range_start, done_until, rows_written`,
      [TABLE, skipped ? 'skipped' : 'running', durationMs, JSON.stringify(skipped ? { reason: 'the table already held ticks' } : { durationMs })],
    );
    await client.query('COMMIT');
    return rows[0]!;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The backfill as a job: one connection, a lakets.job_runs row, an advisory lock (src/scheduler/job.ts). */
export function backfillJob(durationMs: number): Job {
  return {
    name: 'backfill',
    async run({ client, config, logger }): Promise<JobResult> {
      const started = Date.now();
      const ledger = await claim(client, durationMs);
      if (ledger.status !== 'running') {
        return { rowsAffected: 0, detail: { status: ledger.status === 'done' ? 'already done' : 'skipped: the table already held ticks' } };
      }
      const specs = await ensureSymbols(client, config.symbols);
      const spacingMs = tickSpacingMs(durationMs, specs.length);
      const from = ledger.done_until.getTime();
      const resumed = from > ledger.range_start.getTime();

      // (A backfill interrupted right at its end has nothing left to make chunks for.)
      const { rows: made } =
        Date.now() - from < CAUGHT_UP_MS
          ? { rows: [] }
          : await client.query<{ chunks_created: number; deferred: number }>(
              `SELECT * FROM lakets.create_chunks_for_range($1, $2, now(),
                        greatest($3::interval, (SELECT chunk_interval FROM lakets.chronotables WHERE table_name = $1)))`,
              [TABLE, new Date(from), PAST_CHUNK_INTERVAL],
            );
      const chunksMs = Date.now() - started;

      // A resumed backfill continues the walks from the last prices it wrote.
      const generator = new TickGenerator(specs, {
        seed: SEED + (resumed ? from % 1_000_003 : 0),
        lateShare: 0,
        jitterMs: 0,
        volatilityScale: BACKFILL_VOLATILITY_SCALE,
        startPrices: resumed ? await latestPrices(client, TABLE) : undefined,
      });
      // Each history tick stands for the trades of its spacing at the live rate: scaling its volume so
      // keeps the volume bars of the history and of the live stream comparable across the join.
      const volumeScale = Math.max(1, (config.tickRate / specs.length) * (spacingMs / 1000));
      let cursor = from;
      let rows = Number(ledger.rows_written);
      let slices = 0;
      // Up to the moment it finishes, so the live stream (started right after) joins without a gap.
      for (let now = Date.now(); now - cursor >= CAUGHT_UP_MS; now = Date.now()) {
        const end = Math.min(cursor + SLICE_MS, now);
        const count = Math.max(1, Math.round(((end - cursor) / spacingMs) * specs.length));
        const ticks = generator.batch(count, BigInt(end) * 1000n, BigInt(end - cursor) * 1000n);
        for (const tick of ticks) tick.volume = Math.round(tick.volume * volumeScale);
        await client.query('BEGIN');
        try {
          await copyTicks(client, ticks, TABLE);
          await client.query(
            `UPDATE lakets.backfills SET done_until = $2, rows_written = rows_written + $3 WHERE table_name = $1`,
            [TABLE, new Date(end), ticks.length],
          );
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        rows += ticks.length;
        slices += 1;
        cursor = end;
      }
      const detail = {
        from: ledger.range_start.toISOString(),
        to: new Date(cursor).toISOString(),
        resumedFrom: resumed ? new Date(from).toISOString() : undefined,
        symbols: specs.length,
        tickSpacingMs: spacingMs,
        volumeScale,
        slices,
        chunksCreated: made[0]?.chunks_created ?? 0,
        chunksDeferred: made[0]?.deferred ?? 0,
        chunksMs,
        ms: Date.now() - started,
      };
      await client.query(
        `UPDATE lakets.backfills SET status = 'done', finished_at = clock_timestamp(), detail = detail || $2 WHERE table_name = $1`,
        [TABLE, JSON.stringify(detail)],
      );
      logger.info({ rows, ...detail }, 'backfill: history written');
      return { rowsAffected: rows, detail: { status: 'done', rows, ...detail } };
    },
  };
}

/**
 * The demo's history backfill on the first start of a database (Config.backfillMs; 0: returns at
 * once). A failure is logged and the demo goes on without history: it never stops the start.
 */
export async function runBackfill(url: string, config: Config, logger: Logger): Promise<void> {
  if (config.backfillMs === 0) return;
  const outcome = await runJobOnce(url, backfillJob(config.backfillMs), config, logger).catch(
    (error: Error) => ({ status: 'failed' as const, error, ms: 0 }),
  );
  if (outcome.status === 'failed') {
    logger.error({ err: outcome.error.message }, 'backfill failed; the demo runs without history (the next start resumes it)');
  }
}
