import { TICK_TABLE } from '../config.ts';
import type { ListenHub } from '../db/listen-hub.ts';
import type { Db } from '../db/pool.ts';
import { TICK_LVC_TABLE } from '../db/tables.ts';
import type { Logger } from '../logger.ts';
import { CoalescingFeed, type FeedSubscriber } from './coalescing-feed.ts';
import type { LatestQueue } from './latest-queue.ts';

/** The channel the last value cache's trigger notifies (one NOTIFY per statement, listing the symbols it changed). */
export const LVC_CHANNEL = 'lakets_lvc';

export interface Price {
  symbol: string;
  price: number;
  volume: number;
  time: Date;
  updatedAt: Date;
}

interface PriceSubscriber extends FeedSubscriber<Price> {
  symbols: Set<string> | null; // null: every symbol
}

/**
 * The latest prices, read from the last value cache, and their subscriptions: notifications name
 * the changed symbols, which are read back from the cache in one query per burst and fanned out,
 * latest wins per symbol.
 */
export class PriceFeed {
  private dirty = new Set<string>();
  private dirtyAll = false;
  private readonly feed: CoalescingFeed<PriceSubscriber, Price>;

  constructor(
    private readonly db: Db,
    hub: ListenHub,
    logger: Logger,
  ) {
    this.feed = new CoalescingFeed<PriceSubscriber, Price>({
      name: 'price',
      logger,
      pending: () => this.dirtyAll || this.dirty.size > 0,
      read: () => this.read(),
      readFailed: () => (this.dirtyAll = true),
      clear: () => {
        this.dirty.clear();
        this.dirtyAll = false;
      },
      listen: { hub, channel: LVC_CHANNEL, notified: (payload) => this.onNotification(payload), resync: () => this.markAll() },
    });
  }

  async latest(symbols: readonly string[]): Promise<Price[]> {
    if (symbols.length === 0) return [];
    const rows = await this.db
      .selectFrom(TICK_LVC_TABLE)
      .select(['symbol', 'price', 'volume', 'time', 'last_updated'])
      .where('symbol', 'in', symbols)
      .orderBy('symbol')
      .execute();
    return rows.map((r) => ({ symbol: r.symbol, price: r.price, volume: r.volume, time: r.time, updatedAt: r.last_updated }));
  }

  /** A subscription: the current prices at once, then every change, latest wins per symbol. */
  subscribe(symbols: readonly string[] | null): LatestQueue<Price> {
    const subscriber = this.feed.subscribe((queue) => ({ symbols: symbols ? new Set(symbols) : null, queue }));
    if (symbols) {
      for (const s of symbols) this.dirty.add(s);
      this.feed.schedule();
    } else {
      this.markAll();
    }
    return subscriber.queue;
  }

  close(): void {
    this.feed.close();
  }

  private onNotification(payload: unknown): void {
    const p = payload as { table?: string; keys?: unknown[]; resync?: boolean } | undefined;
    if (p && p.table && p.table !== TICK_TABLE) return;
    if (!p || p.resync || !Array.isArray(p.keys)) return this.markAll();
    for (const key of p.keys) if (typeof key === 'string') this.dirty.add(key);
    this.feed.schedule();
  }

  private markAll(): void {
    this.dirtyAll = true;
    this.feed.schedule();
  }

  private async read(): Promise<void> {
    const all = this.dirtyAll;
    const symbols = [...this.dirty];
    this.dirty = new Set();
    this.dirtyAll = false;
    const query = this.db.selectFrom(TICK_LVC_TABLE).select(['symbol', 'price', 'volume', 'time', 'last_updated']);
    const rows = await (all ? query : query.where('symbol', 'in', symbols)).execute();
    for (const r of rows) {
      const price: Price = { symbol: r.symbol, price: r.price, volume: r.volume, time: r.time, updatedAt: r.last_updated };
      for (const s of this.feed.subscribers) if (!s.symbols || s.symbols.has(r.symbol)) s.queue.push(r.symbol, price);
    }
  }
}
