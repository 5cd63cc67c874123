import { sql } from 'kysely';
import { cancelledBy, type Db } from '../db/pool.ts';
import type { RollupGranularity } from './granularity.ts';

/** Progress of one rollup: buckets before its watermark are materialised unless an invalidation is pending. */
export interface Watermark {
  rollup: string;
  granularity: RollupGranularity | null;
  watermark: Date | null;
  pendingInvalidations: number;
  lastRefreshAt: Date | null;
  lastRefreshMs: number | null;
}

/** One rollup's progress as either read reports it: lakets.show_rollup_dag() rows, or pipeline_status() JSON. */
export interface WatermarkSource {
  rollup: string;
  watermark: Date | string | null;
  pendingInvalidations: number | string;
  lastRefreshAt: Date | string | null;
  lastRefreshMs: number | null;
}

const GRANULARITY_OF_ROLLUP: Record<string, RollupGranularity> = { ohlcv_1min: 'minute', ohlcv_1hour: 'hour', ohlcv_1day: 'day' };

/** A rollup's Watermark, whichever read it came from. */
export function watermarkOf(r: WatermarkSource): Watermark {
  return {
    rollup: r.rollup,
    granularity: GRANULARITY_OF_ROLLUP[r.rollup] ?? null,
    watermark: r.watermark === null ? null : new Date(r.watermark),
    pendingInvalidations: Number(r.pendingInvalidations),
    lastRefreshAt: r.lastRefreshAt === null ? null : new Date(r.lastRefreshAt),
    lastRefreshMs: r.lastRefreshMs,
  };
}

/** Every rollup in refresh order (minute, hour, day) with its watermark and pending work (lakets.show_rollup_dag). */
export async function readWatermarks(db: Db, signal?: AbortSignal): Promise<Watermark[]> {
  const { rows } = await sql<WatermarkSource>`SELECT name AS rollup, watermark, pending_invalidations AS "pendingInvalidations",
                                                     last_refresh_at AS "lastRefreshAt", last_refresh_ms AS "lastRefreshMs"
                                                FROM lakets.show_rollup_dag()`.execute(db, cancelledBy(signal));
  return rows.map(watermarkOf);
}
