import { describe, expect, it } from 'vitest';
import { TickGenerator } from '../../src/ticks/generator.ts';
import { formatMicrosUtc } from '../../src/lake/lsn.ts';

const specs = [
  { symbol: 'AAPL', basePrice: 228.5, volatility: 0.25 },
  { symbol: 'BTC-USD', basePrice: 67250, volatility: 0.65 },
];
const end = 1_790_000_000_000_000n;

describe('synthetic tick generator', () => {
  it('is reproducible for a seed and differs across seeds', () => {
    const a = new TickGenerator(specs, { seed: 1 }).batch(500, end, 1_000_000n);
    const b = new TickGenerator(specs, { seed: 1 }).batch(500, end, 1_000_000n);
    const c = new TickGenerator(specs, { seed: 2 }).batch(500, end, 1_000_000n);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('walks prices around the base price with positive volumes, microsecond times and some late ticks', () => {
    const gen = new TickGenerator(specs, { seed: 9, lateShare: 0.01, maxLatenessMs: 20_000 });
    const ticks = gen.batch(20_000, end, 10_000_000n);
    for (const t of ticks) {
      const base = specs.find((s) => s.symbol === t.symbol)!.basePrice;
      expect(t.price).toBeGreaterThan(base * 0.5);
      expect(t.price).toBeLessThan(base * 1.5);
      expect(t.volume).toBeGreaterThanOrEqual(1);
      expect(t.timeMicros).toBeLessThanOrEqual(end);
    }
    const late = ticks.filter((t) => t.timeMicros < end - 10_000_000n - 1_000_000n);
    expect(late.length).toBeGreaterThan(50);
    expect(late.length).toBeLessThan(600);
    expect(ticks.some((t) => t.timeMicros % 1000n !== 0n)).toBe(true);
    const outOfOrder = ticks.filter((t, i) => i > 0 && t.timeMicros < ticks[i - 1]!.timeMicros);
    expect(outOfOrder.length).toBeGreaterThan(0);
  });

  it('formats microsecond timestamps for COPY without losing precision', () => {
    expect(formatMicrosUtc(1_700_000_000_123_456n)).toBe('2023-11-14 22:13:20.123456+00');
    expect(formatMicrosUtc(1_700_000_000_000_001n)).toBe('2023-11-14 22:13:20.000001+00');
    // before 1970 the epoch microseconds are negative; the fraction still counts forward
    expect(formatMicrosUtc(-631_151_999_876_544n)).toBe('1950-01-01 00:00:00.123456+00');
    expect(formatMicrosUtc(-2_208_988_800_000_000n)).toBe('1900-01-01 00:00:00.000000+00');
  });
});
