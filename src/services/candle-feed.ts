import { TICK_TABLE } from '../config.ts';
import type { ListenHub } from '../db/listen-hub.ts';
import type { Db } from '../db/pool.ts';
import type { Logger } from '../logger.ts';
import { readCandles, type Candle } from './candles.ts';
import { CoalescingFeed, type FeedSubscriber } from './coalescing-feed.ts';
import { BUCKET_MS, bucketStart, type Granularity } from './granularity.ts';
import type { LatestQueue } from './latest-queue.ts';

/** The channel the rollup invalidation trigger notifies: the (symbol, minute) pairs each statement touched. */
export const CANDLES_CHANNEL = 'lakets_candles';

interface CandleSubscriber extends FeedSubscriber<Candle> {
  symbol: string;
  granularity: Granularity;
}

/**
 * candleUpdated: every subscribed bar covering a notified (symbol, minute) is re-read from
 * lakets.candles (always current, the database is the truth) and pushed — including revised past bars.
 */
export class CandleFeed {
  /** "symbol|granularity" → bucket starts (ms) to re-read. */
  private dirty = new Map<string, Set<number>>();
  /** New subscribers, waiting for their current bar. */
  private initial = new Set<CandleSubscriber>();
  private readonly feed: CoalescingFeed<CandleSubscriber, Candle>;

  constructor(
    private readonly db: Db,
    hub: ListenHub,
    logger: Logger,
  ) {
    this.feed = new CoalescingFeed<CandleSubscriber, Candle>({
      name: 'candle',
      logger,
      pending: () => this.dirty.size > 0 || this.initial.size > 0,
      read: () => this.read(),
      readFailed: () => this.markCurrent(),
      clear: () => {
        this.dirty.clear();
        this.initial.clear();
      },
      listen: { hub, channel: CANDLES_CHANNEL, notified: (payload) => this.onNotification(payload), resync: () => this.markCurrent() },
    });
  }

  subscribe(symbol: string, granularity: Granularity): LatestQueue<Candle> {
    const subscriber = this.feed.subscribe((queue) => ({ symbol, granularity, queue }));
    // The full current bar at once, read in the same serialised flush as updates so that it can
    // never overtake (and overwrite) a newer revision of that bar.
    this.initial.add(subscriber);
    this.feed.schedule();
    return subscriber.queue;
  }

  close(): void {
    this.feed.close();
  }

  private onNotification(payload: unknown): void {
    if (this.feed.subscribers.size === 0) return;
    const p = payload as { table?: string; keys?: unknown; resync?: boolean } | undefined;
    if (p?.table && p.table !== TICK_TABLE) return;
    if (!p || p.resync || !Array.isArray(p.keys)) return this.markCurrent();
    for (const key of p.keys) {
      if (!Array.isArray(key) || typeof key[0] !== 'string' || typeof key[1] !== 'number') continue;
      const [symbol, minuteSeconds] = key as [string, number];
      for (const s of this.feed.subscribers) {
        if (s.symbol !== symbol) continue;
        this.mark(s.symbol, s.granularity, bucketStart(s.granularity, minuteSeconds * 1000));
      }
    }
    this.feed.schedule();
  }

  /** After a lost connection, an oversized statement or a failed read: re-read every subscribed current bar. */
  private markCurrent(): void {
    for (const s of this.feed.subscribers) this.mark(s.symbol, s.granularity, bucketStart(s.granularity, Date.now()));
    this.feed.schedule();
  }

  private mark(symbol: string, granularity: Granularity, bucket: number): void {
    const key = `${symbol}|${granularity}`;
    let set = this.dirty.get(key);
    if (!set) this.dirty.set(key, (set = new Set()));
    set.add(bucket);
  }

  private async read(): Promise<void> {
    const newcomers = this.initial;
    this.initial = new Set();
    for (const sub of newcomers) {
      if (!this.feed.subscribers.has(sub)) continue;
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
      const targets = [...this.feed.subscribers].filter((s) => s.symbol === symbol && s.granularity === granularity);
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
}
