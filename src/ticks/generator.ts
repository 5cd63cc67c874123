import { clamp, TICK_LIMITS } from './limits.ts';

/**
 * Synthetic ticks: a seeded geometric Brownian motion per symbol around its base price, with
 * realistic volumes and a small share of late and out-of-order ticks (docs/ARCHITECTURE.md §8). Pure and
 * deterministic for a seed, so tests and benchmarks are reproducible.
 */
export interface SymbolSpec {
  symbol: string;
  basePrice: number;
  volatility: number;
}

export interface GeneratorOptions {
  seed?: number;
  /** Share of ticks sent late (back-dated by up to maxLatenessMs). */
  lateShare?: number;
  maxLatenessMs?: number;
  /** Out-of-order jitter within a batch. */
  jitterMs?: number;
  /** Speeds the random walk up so that minute candles visibly move in a demo. */
  volatilityScale?: number;
  /**
   * Where each symbol's walk starts (default: its base price). A stream that follows earlier ticks
   * (a backfilled history, a restart) starts from their last prices so the chart has no jump.
   */
  startPrices?: ReadonlyMap<string, number>;
}

export interface Tick {
  /** Microseconds since the Unix epoch: the feed keeps microsecond precision end to end. */
  timeMicros: bigint;
  symbol: string;
  price: number;
  volume: number;
}

const SECONDS_PER_YEAR = 365 * 24 * 3600;

/** mulberry32: a tiny, well-distributed 32-bit PRNG; enough for synthetic market data. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class TickGenerator {
  private readonly random: () => number;
  private readonly prices = new Map<string, number>();
  private readonly lastMicros = new Map<string, bigint>();
  private spare: number | undefined;
  private readonly lateShare: number;
  private readonly maxLatenessMs: number;
  private readonly jitterMs: number;
  private readonly volatilityScale: number;

  constructor(
    private readonly symbols: readonly SymbolSpec[],
    options: GeneratorOptions = {},
  ) {
    if (symbols.length === 0) throw new Error('TickGenerator needs at least one symbol');
    this.random = seededRandom(options.seed ?? 42);
    this.lateShare = options.lateShare ?? 0.005;
    this.maxLatenessMs = options.maxLatenessMs ?? 20_000;
    this.jitterMs = options.jitterMs ?? 150;
    this.volatilityScale = options.volatilityScale ?? 30;
    for (const s of symbols) {
      const start = options.startPrices?.get(s.symbol);
      this.prices.set(s.symbol, start !== undefined && Number.isFinite(start) && start > 0 ? start : s.basePrice);
    }
  }

  private gaussian(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.random();
    const v = this.random();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** `count` ticks spread over the interval (endMicros - spanMicros, endMicros]. */
  batch(count: number, endMicros: bigint, spanMicros: bigint): Tick[] {
    const ticks: Tick[] = [];
    for (let i = 0; i < count; i++) {
      const spec = this.symbols[Math.floor(this.random() * this.symbols.length)]!;
      const offset = spanMicros > 0n ? (spanMicros * BigInt(i + 1)) / BigInt(count) : 0n;
      let micros = endMicros - spanMicros + offset;
      const roll = this.random();
      if (roll < this.lateShare) {
        micros -= BigInt(Math.floor(1_000 + this.random() * this.maxLatenessMs)) * 1000n;
      } else if (this.jitterMs > 0) {
        micros -= BigInt(Math.floor(this.random() * this.jitterMs * 1000));
      }
      micros += BigInt(Math.floor(this.random() * 1000)); // sub-millisecond digits
      if (micros > endMicros) micros = endMicros;
      const last = this.lastMicros.get(spec.symbol) ?? micros;
      const dtSeconds = Math.max(0.001, Number(micros > last ? micros - last : 1000n) / 1e6);
      this.lastMicros.set(spec.symbol, micros > last ? micros : last);
      const sigma = spec.volatility * this.volatilityScale;
      const dt = dtSeconds / SECONDS_PER_YEAR;
      const prev = this.prices.get(spec.symbol)!;
      // Mean-revert gently towards the base price so that long demos stay plausible.
      const drift = 0.5 * Math.log(spec.basePrice / prev) * dt * 50;
      // The walk (and a base price of any size) stays inside the bounds the database enforces.
      const next = clamp(prev * Math.exp(drift - 0.5 * sigma * sigma * dt + sigma * Math.sqrt(dt) * this.gaussian()), TICK_LIMITS.minPrice, TICK_LIMITS.maxPrice);
      this.prices.set(spec.symbol, next);
      const volume = clamp(Math.round(Math.exp(4 + 1.2 * this.gaussian())), 1, TICK_LIMITS.maxVolume);
      ticks.push({ timeMicros: micros, symbol: spec.symbol, price: roundPrice(next), volume });
    }
    return ticks;
  }
}

/** Cents for large prices, more digits for small ones; never rounded below the smallest price. */
function roundPrice(p: number): number {
  if (p < 1e-6) return clamp(Number(p.toPrecision(6)), TICK_LIMITS.minPrice, TICK_LIMITS.maxPrice);
  const digits = p >= 1000 ? 2 : p >= 1 ? 4 : 6;
  return clamp(Number(p.toFixed(digits)), TICK_LIMITS.minPrice, TICK_LIMITS.maxPrice);
}

export function nowMicros(): bigint {
  return BigInt(Date.now()) * 1000n;
}
