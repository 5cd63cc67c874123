import { sql, type AbortableQueryOptions } from 'kysely';
import type { Db } from '../db/pool.ts';
import type { ListenHub } from '../db/listen-hub.ts';
import { LatestQueue } from '../server/latest-queue.ts';
import type { Logger } from '../logger.ts';
import { BUCKET_MS, bucketStart, type Granularity } from './granularity.ts';

export const CANDLES_CHANNEL = 'lakets_candles';

export interface Candle {
  symbol: string;
  bucket: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  tickCount: number;
  final: boolean;
  filled?: boolean;
}

/** A row of lakets.candles / candles_filled as node-pg returns it. */
export interface CandleRow {
  bucket: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  tick_count: string;
  final: boolean;
  filled?: boolean;
}

function toCandle(symbol: string, r: CandleRow): Candle {
  return {
    symbol,
    bucket: r.bucket,
    open: r.open,
    high: r.high,
    low: r.low,
    close: r.close,
    volume: r.volume,
    tickCount: Number(r.tick_count),
    final: r.final,
    ...(r.filled === undefined ? {} : { filled: r.filled }),
  };
}

/** Always-current candles of [from, to) by bucket start (lakets.candles / candles_filled). */
export async function readCandles(
  db: Db,
  symbol: string,
  granularity: Granularity,
  from: Date,
  to: Date,
  fill = false,
  options?: AbortableQueryOptions & { limit?: number; keep?: 'first' | 'last' },
): Promise<Candle[]> {
  const source = fill
    ? sql`lakets.candles_filled(${symbol}, ${granularity}, ${from}, ${to})`
    : sql`lakets.candles(${symbol}, ${granularity}, ${from}, ${to})`;
  // With a limit, only the bars kept cross the wire: a window of 10,000 buckets asked for one bar
  // must not make this process parse 10,000 rows.
  const query =
    options?.limit === undefined
      ? sql<CandleRow>`SELECT * FROM ${source} AS c`
      : options.keep === 'first'
        ? sql<CandleRow>`SELECT * FROM ${source} AS c ORDER BY c.bucket LIMIT ${options.limit}`
        : sql<CandleRow>`SELECT * FROM (SELECT * FROM ${source} AS c ORDER BY c.bucket DESC LIMIT ${options.limit}) AS l ORDER BY l.bucket`;
  const { rows } = await query.execute(db, options);
  return rows.map((r) => toCandle(symbol, r));
}

interface Subscription {
  symbol: string;
  granularity: Granularity;
  queue: LatestQueue<Candle>;
}

/**
 * candleUpdated: the invalidation trigger notifies the (symbol, minute bucket) pairs each
 * statement touched; every subscribed bar covering one of them is re-read from lakets.candles
 * (always current, the database is the truth) and pushed — including revised past bars.
 */
export class CandleFeed {
  private readonly subs = new Set<Subscription>();
  /** "symbol|granularity" → bucket starts (ms) to re-read. */
  private dirty = new Map<string, Set<number>>();
  private flushing = false;
  private initial = new Set<Subscription>();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly db: Db,
    hub: ListenHub,
    private readonly logger: Logger,
  ) {
    this.unsubscribe.push(hub.on(CANDLES_CHANNEL, (p) => this.onNotification(p)));
    this.unsubscribe.push(hub.onResync(() => this.markCurrent()));
  }

  subscribe(symbol: string, granularity: Granularity): LatestQueue<Candle> {
    const sub: Subscription = { symbol, granularity, queue: undefined as never };
    sub.queue = new LatestQueue<Candle>(() => this.subs.delete(sub));
    this.subs.add(sub);
    // The full current bar at once, read in the same serialised flush as updates so that it can
    // never overtake (and overwrite) a newer revision of that bar.
    this.initial.add(sub);
    this.scheduleFlush();
    return sub.queue;
  }

  close(): void {
    this.unsubscribe.forEach((u) => u());
    for (const s of this.subs) s.queue.close();
  }

  private onNotification(payload: unknown): void {
    if (this.subs.size === 0) return;
    const p = payload as { table?: string; keys?: unknown; resync?: boolean } | undefined;
    if (p?.table && p.table !== 'stock_ticks') return;
    if (!p || p.resync || !Array.isArray(p.keys)) return this.markCurrent();
    for (const key of p.keys) {
      if (!Array.isArray(key) || typeof key[0] !== 'string' || typeof key[1] !== 'number') continue;
      const [symbol, minuteSeconds] = key as [string, number];
      for (const s of this.subs) {
        if (s.symbol !== symbol) continue;
        this.mark(s.symbol, s.granularity, bucketStart(s.granularity, minuteSeconds * 1000));
      }
    }
    this.scheduleFlush();
  }

  /** After a lost connection or an oversized statement: re-read every subscribed current bar. */
  private markCurrent(): void {
    for (const s of this.subs) this.mark(s.symbol, s.granularity, bucketStart(s.granularity, Date.now()));
    this.scheduleFlush();
  }

  private mark(symbol: string, granularity: Granularity, bucket: number): void {
    const key = `${symbol}|${granularity}`;
    let set = this.dirty.get(key);
    if (!set) this.dirty.set(key, (set = new Set()));
    set.add(bucket);
  }

  private scheduleFlush(): void {
    if (this.flushing || (this.dirty.size === 0 && this.initial.size === 0)) return;
    this.flushing = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    try {
      while (this.dirty.size > 0 || this.initial.size > 0) {
        const newcomers = this.initial;
        this.initial = new Set();
        for (const sub of newcomers) {
          if (!this.subs.has(sub)) continue;
          // The newest bar of the last few buckets: the open bar, or the last one with ticks.
          const w = BUCKET_MS[sub.granularity];
          const to = bucketStart(sub.granularity, Date.now()) + w;
          const last = (await readCandles(this.db, sub.symbol, sub.granularity, new Date(to - 6 * w), new Date(to))).at(-1);
          if (last) sub.queue.push(String(last.bucket.getTime()), last);
        }
        const batch = this.dirty;
        this.dirty = new Map();
        for (const [key, buckets] of batch) {
          const [symbol, granularity] = key.split('|') as [string, Granularity];
          const targets = [...this.subs].filter((s) => s.symbol === symbol && s.granularity === granularity);
          if (targets.length === 0) continue;
          const sorted = [...buckets].sort((a, b) => a - b);
          const from = new Date(sorted[0]!);
          const to = new Date(sorted.at(-1)! + BUCKET_MS[granularity]);
          const bars = await readCandles(this.db, symbol, granularity, from, to);
          for (const bar of bars) {
            if (!buckets.has(bar.bucket.getTime())) continue;
            for (const s of targets) s.queue.push(String(bar.bucket.getTime()), bar);
          }
        }
      }
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'candle fan-out read failed; retrying');
      setTimeout(() => {
        this.flushing = false;
        this.markCurrent();
      }, 500);
      return;
    }
    this.flushing = false;
  }
}
