/** Candle granularities (one OHLCV rollup each: ohlcv_1min, ohlcv_1hour, ohlcv_1day) and their bucket widths. */
export type Granularity = 'minute' | 'hour' | 'day';

export const BUCKET_MS: Record<Granularity, number> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

/** Buckets are UTC-aligned from 2000-01-01 (date_bin); every width divides a day, so epoch alignment is the same. */
export function bucketStart(granularity: Granularity, ms: number): number {
  const w = BUCKET_MS[granularity];
  return Math.floor(ms / w) * w;
}
