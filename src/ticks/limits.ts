/**
 * The bounds the database enforces on a stock tick (src/sql/023_tick_bounds.sql, the function
 * lakets.stock_tick_limits(); README "Limits"). Mirrored here so that the synthetic feed never
 * sends a tick the database refuses; test/tick-bounds.test.ts checks that both agree.
 */
export const TICK_LIMITS = {
  minPrice: 1e-12,
  maxPrice: 1e12,
  minVolume: 0,
  maxVolume: 1e15,
  /** The earliest accepted tick time (inclusive), UTC. */
  minTime: '1900-01-01T00:00:00.000Z',
} as const;

/** `value` brought inside [min, max]. */
export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
