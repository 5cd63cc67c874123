import { sql } from 'kysely';
import { TICK_TABLE } from '../config.ts';
import type { ListenHub } from '../db/listen-hub.ts';
import type { Db } from '../db/pool.ts';
import type { Logger } from '../logger.ts';
import { readBarsAt, readPages, type Candle } from './candles.ts';
import { CoalescingFeed, type FeedSubscriber } from './coalescing-feed.ts';
import { sizeKey, type BarSize } from './granularity.ts';
import type { LatestQueue } from './latest-queue.ts';

/** The channel the rollup invalidation trigger notifies: the (symbol, minute) pairs each statement touched. */
export const CANDLES_CHANNEL = 'lakets_candles';
/** How often the feed looks whether a refresh ran (bars it sent as open may have become final). */
export const REFRESH_POLL_MS = 1_000;
/** Bars per symbol and size remembered as sent-while-open, the newest kept. */
const MAX_OPEN_BARS = 64;

interface CandleSubscriber extends FeedSubscriber<Candle> {
  symbol: string;
  size: BarSize;
  key: string;
}

/** What one size has marked: bars to read back, per symbol (instants inside them, ms). */
interface SizeWork {
  size: BarSize;
  instants: Map<string, Set<number>>;
}

/**
 * candleUpdated for bars of any size. Notifications name the (symbol, minute) pairs a statement
 * touched; every subscribed size marks the bar containing each minute, and one read per size
 * (lakets.candle_bars_at, all symbols of that size together) brings back the bars, which are
 * pushed to that size's subscribers of each symbol — the open bar and revised past bars alike.
 *
 * A bar turns final without any tick: when a refresh runs after it closed. The refresh sends no
 * notification, so the feed looks at the minute rollup's refresh count every second while anyone
 * listens, and when it moved, reads back every bar it last sent as not final (the open bar, bars
 * revised by late ticks) and sends those that changed.
 */
export class CandleFeed {
  /** size key → marked bars. */
  private dirty = new Map<string, SizeWork>();
  /** New subscribers (and, after a lost connection, all of them), waiting for their current bar. */
  private initial = new Set<CandleSubscriber>();
  /** size key → symbol → starts (ms) of bars last sent with final = false. */
  private open = new Map<string, Map<string, Set<number>>>();
  private lastRefresh: string | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private polling = false;
  private readonly feed: CoalescingFeed<CandleSubscriber, Candle>;

  constructor(
    private readonly db: Db,
    hub: ListenHub,
    private readonly logger: Logger,
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
        this.open.clear();
      },
      idle: () => this.stopPolling(),
      listen: { hub, channel: CANDLES_CHANNEL, notified: (payload) => this.onNotification(payload), resync: () => this.markCurrent() },
    });
  }

  subscribe(symbol: string, size: BarSize): LatestQueue<Candle> {
    const subscriber = this.feed.subscribe((queue) => ({ symbol, size, key: sizeKey(size), queue }));
    // The current bar at once, read in the same serialised flush as updates so that it can never
    // overtake (and overwrite) a newer revision of that bar.
    this.initial.add(subscriber);
    this.startPolling();
    this.feed.schedule();
    return subscriber.queue;
  }

  close(): void {
    this.stopPolling();
    this.feed.close();
  }

  private onNotification(payload: unknown): void {
    if (this.feed.subscribers.size === 0) return;
    const p = payload as { table?: string; keys?: unknown; resync?: boolean } | undefined;
    if (p?.table && p.table !== TICK_TABLE) return;
    if (!p || p.resync || !Array.isArray(p.keys)) return this.markCurrent();
    const sizesBySymbol = new Map<string, Map<string, BarSize>>();
    for (const s of this.feed.subscribers) {
      let sizes = sizesBySymbol.get(s.symbol);
      if (!sizes) sizesBySymbol.set(s.symbol, (sizes = new Map()));
      sizes.set(s.key, s.size);
    }
    for (const key of p.keys) {
      if (!Array.isArray(key) || typeof key[0] !== 'string' || typeof key[1] !== 'number') continue;
      const [symbol, minuteSeconds] = key as [string, number];
      for (const [k, size] of sizesBySymbol.get(symbol) ?? []) this.mark(k, size, symbol, minuteSeconds * 1000);
    }
    this.feed.schedule();
  }

  /** After a lost connection, an oversized statement or a failed read: every subscriber's current bar again, and every open bar. */
  private markCurrent(): void {
    for (const s of this.feed.subscribers) this.initial.add(s);
    this.markOpenBars();
    this.feed.schedule();
  }

  private markOpenBars(): void {
    const sizes = new Map<string, BarSize>([...this.feed.subscribers].map((s) => [s.key, s.size]));
    for (const [key, symbols] of this.open) {
      const size = sizes.get(key);
      if (!size) {
        this.open.delete(key); // nobody watches this size any more
        continue;
      }
      for (const [symbol, starts] of symbols) for (const start of starts) this.mark(key, size, symbol, start);
    }
  }

  private mark(key: string, size: BarSize, symbol: string, at: number): void {
    let work = this.dirty.get(key);
    if (!work) this.dirty.set(key, (work = { size, instants: new Map() }));
    let instants = work.instants.get(symbol);
    if (!instants) work.instants.set(symbol, (instants = new Set()));
    instants.add(at);
  }

  private async read(): Promise<void> {
    const newcomers = this.initial;
    this.initial = new Set();
    const bySize = new Map<string, { size: BarSize; subscribers: CandleSubscriber[] }>();
    for (const s of newcomers) {
      if (!this.feed.subscribers.has(s)) continue;
      const group = bySize.get(s.key) ?? { size: s.size, subscribers: [] };
      group.subscribers.push(s);
      bySize.set(s.key, group);
    }
    // The newest bar of each newcomer's symbol: one read per size.
    for (const [key, { size, subscribers }] of bySize) {
      const symbols = [...new Set(subscribers.map((s) => s.symbol))];
      const pages = await readPages(this.db, symbols, size, { limit: 1, fill: false });
      for (const s of subscribers) {
        const bar = pages.get(s.symbol)?.at(-1);
        if (bar) {
          s.queue.push(String(bar.bucket.getTime()), bar);
          this.remember(key, bar);
        }
      }
    }

    const batch = this.dirty;
    this.dirty = new Map();
    for (const [key, { size, instants }] of batch) {
      const targets = [...this.feed.subscribers].filter((s) => s.key === key);
      if (targets.length === 0) continue;
      const pairs: Array<[string, Date]> = [];
      for (const [symbol, times] of instants) for (const t of times) pairs.push([symbol, new Date(t)]);
      const bars = await readBarsAt(this.db, size, pairs);
      for (const bar of bars) {
        for (const s of targets) if (s.symbol === bar.symbol) s.queue.push(String(bar.bucket.getTime()), bar);
        this.remember(key, bar);
      }
    }
  }

  /** Keeps the bars sent as not final (to send them again once final), forgets the final ones. */
  private remember(key: string, bar: Candle): void {
    let symbols = this.open.get(key);
    if (!symbols) this.open.set(key, (symbols = new Map()));
    let starts = symbols.get(bar.symbol);
    if (!starts) symbols.set(bar.symbol, (starts = new Set()));
    const t = bar.bucket.getTime();
    if (bar.final) {
      starts.delete(t);
      return;
    }
    starts.add(t);
    if (starts.size > MAX_OPEN_BARS) starts.delete(Math.min(...starts));
  }

  private startPolling(): void {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => void this.pollRefresh(), REFRESH_POLL_MS);
    this.pollTimer.unref();
  }

  private stopPolling(): void {
    clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.lastRefresh = undefined;
  }

  /** Did a refresh run since the last look? Then every bar sent as open is read again. */
  private async pollRefresh(): Promise<void> {
    if (this.polling || this.feed.subscribers.size === 0) return;
    this.polling = true;
    try {
      const { rows } = await sql<{ mark: string }>`
        SELECT refresh_count::text || '/' || coalesce(watermark::text, '') AS mark FROM lakets.rollups WHERE name = 'ohlcv_1min'`.execute(this.db);
      const mark = rows[0]?.mark;
      // The first look has nothing to compare with: a refresh may have run since the bars were
      // read, so they are read again once.
      if (mark !== undefined && mark !== this.lastRefresh) {
        this.markOpenBars();
        this.feed.schedule();
      }
      this.lastRefresh = mark;
    } catch (err) {
      this.logger.debug({ err: (err as Error).message }, 'candle feed: could not read the refresh count; trying again');
    } finally {
      this.polling = false;
    }
  }
}
