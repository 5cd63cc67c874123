import type { Db } from '../db/pool.ts';
import type { ListenHub } from '../db/listen-hub.ts';
import { LatestQueue } from '../server/latest-queue.ts';
import type { Logger } from '../logger.ts';

export const LVC_CHANNEL = 'lakets_lvc';

export interface Price {
  symbol: string;
  price: number;
  volume: number;
  time: Date;
  updatedAt: Date;
}

interface Subscriber {
  symbols: Set<string> | null; // null: every symbol
  queue: LatestQueue<Price>;
}

/**
 * Turns last-value-cache notifications into price updates for every subscriber. Payloads are
 * hints: the changed symbols are read back from the cache in one query per burst (the database
 * is the truth), then fanned out to each subscriber's coalescing queue.
 */
export class PriceFeed {
  private readonly subscribers = new Set<Subscriber>();
  private dirty = new Set<string>();
  private dirtyAll = false;
  private flushing = false;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly db: Db,
    hub: ListenHub,
    private readonly logger: Logger,
  ) {
    this.unsubscribe.push(hub.on(LVC_CHANNEL, (payload) => this.onNotification(payload)));
    this.unsubscribe.push(hub.onResync(() => this.markAll()));
  }

  async latest(symbols: readonly string[]): Promise<Price[]> {
    if (symbols.length === 0) return [];
    const rows = await this.db
      .selectFrom('_lvc_stock_ticks')
      .select(['symbol', 'price', 'volume', 'time', 'last_updated'])
      .where('symbol', 'in', symbols)
      .orderBy('symbol')
      .execute();
    return rows.map((r) => ({ symbol: r.symbol, price: r.price, volume: r.volume, time: r.time, updatedAt: r.last_updated }));
  }

  /** A subscription: the current prices at once, then every change, latest wins per symbol. */
  subscribe(symbols: readonly string[] | null): LatestQueue<Price> {
    const subscriber: Subscriber = { symbols: symbols ? new Set(symbols) : null, queue: undefined as never };
    subscriber.queue = new LatestQueue<Price>(() => this.subscribers.delete(subscriber));
    this.subscribers.add(subscriber);
    // The current state goes through the same serialised flush as updates, so an initial value
    // can never arrive after (and overwrite) a newer one.
    if (symbols) {
      for (const s of symbols) this.dirty.add(s);
      this.scheduleFlush();
    } else {
      this.markAll();
    }
    return subscriber.queue;
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }

  close(): void {
    this.unsubscribe.forEach((u) => u());
    for (const s of this.subscribers) s.queue.close();
  }

  private onNotification(payload: unknown): void {
    const p = payload as { table?: string; keys?: unknown[]; resync?: boolean } | undefined;
    if (p && p.table && p.table !== 'stock_ticks') return;
    if (!p || p.resync || !Array.isArray(p.keys)) return this.markAll();
    for (const key of p.keys) if (typeof key === 'string') this.dirty.add(key);
    this.scheduleFlush();
  }

  private markAll(): void {
    this.dirtyAll = true;
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushing || this.subscribers.size === 0) {
      if (this.subscribers.size === 0) {
        this.dirty.clear();
        this.dirtyAll = false;
      }
      return;
    }
    this.flushing = true;
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    try {
      while ((this.dirty.size > 0 || this.dirtyAll) && this.subscribers.size > 0) {
        const all = this.dirtyAll;
        const symbols = [...this.dirty];
        this.dirty = new Set();
        this.dirtyAll = false;
        const query = this.db.selectFrom('_lvc_stock_ticks').select(['symbol', 'price', 'volume', 'time', 'last_updated']);
        const rows = await (all ? query : query.where('symbol', 'in', symbols)).execute();
        for (const r of rows) {
          const price: Price = { symbol: r.symbol, price: r.price, volume: r.volume, time: r.time, updatedAt: r.last_updated };
          for (const s of this.subscribers) if (!s.symbols || s.symbols.has(r.symbol)) s.queue.push(r.symbol, price);
        }
      }
    } catch (err) {
      // The read failed (e.g. the database restarted): try again shortly with everything dirty.
      this.logger.warn({ err: (err as Error).message }, 'price fan-out read failed; retrying');
      this.dirtyAll = true;
      setTimeout(() => {
        this.flushing = false;
        this.scheduleFlush();
      }, 500);
      return;
    }
    this.flushing = false;
  }
}
