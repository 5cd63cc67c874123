import { TICK_TABLE } from '../config.ts';
import type { ListenHub } from '../db/listen-hub.ts';
import { cancelledBy, type Db } from '../db/pool.ts';
import { TICK_LVC_TABLE } from '../db/tables.ts';
import type { Logger } from '../logger.ts';
import { CoalescingFeed, type FeedSubscriber } from './coalescing-feed.ts';
import type { LatestQueue } from './latest-queue.ts';

/** The channel the last value cache's trigger notifies (one NOTIFY per statement, listing the symbols it changed). */
export const LVC_CHANNEL = 'lakets_lvc';

/**
 * Longest a read waits to prove that the mirror holds every write committed before it (a fence on
 * the LISTEN connection, then the feed's read of what it announced); past it the read goes to the
 * database, which is always exact.
 */
export const CATCH_UP_TIMEOUT_MS = 1_000;

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

/** How the latest-price reads were answered since the start (for tests and /metrics). */
export interface PriceReadStats {
  /** From the mirror, after proving it current. */
  fromMirror: number;
  /** From the database: the mirror could not be proven current (listener down, warming up, slow). */
  fromDatabase: number;
}

function samePrice(a: Price, b: Price): boolean {
  return a.price === b.price && a.volume === b.volume && a.time.getTime() === b.time.getTime() && a.updatedAt.getTime() === b.updatedAt.getTime();
}

/**
 * The latest prices: a mirror of the last value cache kept by its notifications, which answers
 * latestPrice(s) and feeds priceUpdated.
 *
 * Exactness. Notifications only mark symbols; the feed reads the marked rows back from the cache
 * table (the database is the truth) and applies them in order, so the mirror never goes back in
 * time. A read is answered from the mirror only once it is proven to hold every write committed
 * before the read arrived: a fence on the LISTEN connection (ListenHub.fence) makes every
 * notification committed before it reach the feed, and the read then waits for the feed's read
 * of what they marked. So a client that reads after its own write committed (or after anyone
 * else's) sees it, exactly as a query of the table would. When that cannot be proven — the
 * listener is reconnecting (its resync re-reads everything), the mirror is warming up, a fence or
 * a read takes over CATCH_UP_TIMEOUT_MS — the read goes to the database instead.
 *
 * Subscriptions: a new subscriber gets the current prices of its symbols from the mirror, alone
 * (nobody else is sent anything); afterwards each change is pushed once to every subscriber of
 * its symbol, as one shared Price object, latest wins per symbol for slow clients.
 */
export class PriceFeed {
  private readonly prices = new Map<string, Price>();
  private dirty = new Set<string>();
  private dirtyAll = true; // the first read takes the whole cache
  /** Marks made so far (a notification, a resync) and the last mark a completed read covers. */
  private marks = 1;
  private covered = 0;
  private coverWaiters: Array<{ mark: number; resolve: () => void }> = [];
  /** One catch-up check per fence: every read that shares a fence shares its wait. */
  private readonly checks = new WeakMap<Promise<void>, Promise<boolean>>();
  private readonly feed: CoalescingFeed<PriceSubscriber, Price>;
  readonly stats: PriceReadStats = { fromMirror: 0, fromDatabase: 0 };

  constructor(
    private readonly db: Db,
    private readonly hub: ListenHub,
    logger: Logger,
  ) {
    this.feed = new CoalescingFeed<PriceSubscriber, Price>({
      name: 'price',
      logger,
      readWithoutSubscribers: true,
      pending: () => this.dirtyAll || this.dirty.size > 0,
      read: () => this.read(),
      readFailed: () => this.markAll(),
      clear: () => {
        this.dirty.clear();
        this.dirtyAll = false;
      },
      listen: { hub, channel: LVC_CHANNEL, notified: (payload) => this.onNotification(payload), resync: () => this.markAll() },
    });
    this.feed.schedule(); // warm up: the whole cache
  }

  /** The latest prices of these symbols, ordered by symbol; symbols without a tick are left out. */
  async latest(symbols: readonly string[], signal?: AbortSignal): Promise<Price[]> {
    if (symbols.length === 0) return [];
    if (await this.caughtUp()) {
      this.stats.fromMirror++;
      const found: Price[] = [];
      for (const s of symbols) {
        const p = this.prices.get(s);
        if (p) found.push(p);
      }
      return found.length > 1 ? found.sort((a, b) => (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0)) : found;
    }
    this.stats.fromDatabase++;
    const rows = await this.db
      .selectFrom(TICK_LVC_TABLE)
      .select(['symbol', 'price', 'volume', 'time', 'last_updated'])
      .where('symbol', 'in', symbols)
      .orderBy('symbol')
      .execute(cancelledBy(signal));
    return rows.map((r) => ({ symbol: r.symbol, price: r.price, volume: r.volume, time: r.time, updatedAt: r.last_updated }));
  }

  /** A subscription: the current prices at once (to this subscriber alone), then every change, latest wins per symbol. */
  subscribe(symbols: readonly string[] | null): LatestQueue<Price> {
    const subscriber = this.feed.subscribe((queue) => ({ symbols: symbols ? new Set(symbols) : null, queue }));
    // Before the first read completes the mirror is empty: that read pushes every price to every
    // subscriber, this one included.
    if (this.covered > 0) {
      if (symbols) {
        for (const s of symbols) {
          const p = this.prices.get(s);
          if (p) subscriber.queue.push(s, p);
        }
      } else {
        for (const [s, p] of [...this.prices].sort(([a], [b]) => (a < b ? -1 : 1))) subscriber.queue.push(s, p);
      }
    }
    return subscriber.queue;
  }

  close(): void {
    this.feed.close();
    for (const w of this.coverWaiters) w.resolve();
    this.coverWaiters = [];
  }

  /** True once the mirror provably holds every write committed before this call. */
  private caughtUp(): Promise<boolean> {
    if (!this.hub.connected) return Promise.resolve(false);
    const fence = this.hub.fence();
    let check = this.checks.get(fence);
    if (!check) {
      check = this.checkAfter(fence);
      this.checks.set(fence, check);
    }
    return check;
  }

  private async checkAfter(fence: Promise<void>): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), CATCH_UP_TIMEOUT_MS)));
    try {
      const caughtUp = fence.then(
        // Every notification committed before the fence has now marked its symbols.
        () => this.coveredUpTo(this.marks).then(() => this.covered > 0 && this.hub.connected),
        () => false,
      );
      return await Promise.race([caughtUp, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private coveredUpTo(mark: number): Promise<void> {
    if (this.covered >= mark) return Promise.resolve();
    return new Promise((resolve) => this.coverWaiters.push({ mark, resolve }));
  }

  private onNotification(payload: unknown): void {
    const p = payload as { table?: string; keys?: unknown[]; resync?: boolean } | undefined;
    if (p && p.table && p.table !== TICK_TABLE) return;
    if (!p || p.resync || !Array.isArray(p.keys)) return this.markAll();
    for (const key of p.keys) if (typeof key === 'string') this.dirty.add(key);
    this.marks++;
    this.feed.schedule();
  }

  private markAll(): void {
    this.dirtyAll = true;
    this.marks++;
    this.feed.schedule();
  }

  private async read(): Promise<void> {
    const upTo = this.marks;
    const all = this.dirtyAll;
    const symbols = [...this.dirty];
    this.dirty = new Set();
    this.dirtyAll = false;
    const query = this.db.selectFrom(TICK_LVC_TABLE).select(['symbol', 'price', 'volume', 'time', 'last_updated']);
    const rows = await (all ? query : query.where('symbol', 'in', symbols)).execute();
    const seen = new Set<string>();
    for (const r of rows) {
      seen.add(r.symbol);
      const price: Price = { symbol: r.symbol, price: r.price, volume: r.volume, time: r.time, updatedAt: r.last_updated };
      const known = this.prices.get(r.symbol);
      if (known && samePrice(known, price)) continue;
      this.prices.set(r.symbol, price);
      for (const s of this.feed.subscribers) if (!s.symbols || s.symbols.has(r.symbol)) s.queue.push(r.symbol, price);
    }
    // A symbol whose ticks were all deleted has no row any more.
    for (const s of all ? [...this.prices.keys()] : symbols) if (!seen.has(s)) this.prices.delete(s);
    this.covered = upTo;
    if (this.coverWaiters.length) {
      const ready = this.coverWaiters.filter((w) => w.mark <= upTo);
      this.coverWaiters = this.coverWaiters.filter((w) => w.mark > upTo);
      for (const w of ready) w.resolve();
    }
  }
}
