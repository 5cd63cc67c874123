import { sql } from 'kysely';
import { cancelledBy, type Db } from '../db/pool.ts';
import type { Granularity } from './granularity.ts';

/** Progress of one rollup: buckets before its watermark are materialised unless an invalidation is pending. */
export interface Watermark {
  rollup: string;
  granularity: Granularity | null;
  watermark: Date | null;
  pendingInvalidations: number;
  lastRefreshAt: Date | null;
  lastRefreshMs: number | null;
}

interface WatermarkRow {
  name: string;
  watermark: Date | null;
  pending_invalidations: string;
  last_refresh_at: Date | null;
  last_refresh_ms: number | null;
}

const GRANULARITY_OF_ROLLUP: Record<string, Granularity> = { ohlcv_1min: 'minute', ohlcv_1hour: 'hour', ohlcv_1day: 'day' };

export function granularityOfRollup(rollup: string): Granularity | null {
  return GRANULARITY_OF_ROLLUP[rollup] ?? null;
}

/** Every rollup in refresh order (minute, hour, day) with its watermark and pending work (lakets.show_rollup_dag). */
export async function readWatermarks(db: Db, signal?: AbortSignal): Promise<Watermark[]> {
  const { rows } = await sql<WatermarkRow>`SELECT name, watermark, pending_invalidations, last_refresh_at, last_refresh_ms
                                            FROM lakets.show_rollup_dag()`.execute(db, cancelledBy(signal));
  return rows.map((r) => ({
    rollup: r.name,
    granularity: granularityOfRollup(r.name),
    watermark: r.watermark,
    pendingInvalidations: Number(r.pending_invalidations),
    lastRefreshAt: r.last_refresh_at,
    lastRefreshMs: r.last_refresh_ms,
  }));
}
