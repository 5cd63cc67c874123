import type { ListenHub } from '../db/listen-hub.ts';
import type { Logger } from '../logger.ts';
import { LatestQueue } from './latest-queue.ts';

/** A subscriber of a feed: whatever it asked for, and its queue. */
export interface FeedSubscriber<V> {
  queue: LatestQueue<V>;
}

export interface CoalescingFeedOptions {
  /** For log lines: "price", "candle", "pipeline". */
  name: string;
  logger: Logger;
  /** True while something is marked for the next read. */
  pending(): boolean;
  /** Reads what is marked (taking it) and pushes the results to the subscribers' queues. */
  read(): Promise<void>;
  /** A failed read is retried now: mark what it must read again. */
  readFailed(): void;
  /** Nobody listens any more: drop what is marked. */
  clear(): void;
  /** Wait before retrying a failed read. */
  retryMs?: number;
  /** Notifications that mark work: the channel and what a payload marks; a resync marks everything. */
  listen?: { hub: ListenHub; channel: string; notified(payload: unknown): void; resync(): void };
  /** The last subscriber left. */
  idle?(): void;
  /**
   * Read what is marked even while nobody subscribes (a feed whose state also answers queries,
   * like the latest prices); by default marks are dropped when the last subscriber leaves.
   */
  readWithoutSubscribers?: boolean;
}

/**
 * The skeleton every live feed shares (prices, candles, the pipeline): subscribers with a queue that
 * keeps the latest value per key, so a slow client gets the newest state and never a backlog;
 * changes only *marked* when they are announced (notifications are hints: the database is the
 * truth); one read at a time takes everything marked, reads it and fans it out, again while more
 * was marked meanwhile; a failed read (the database restarting) is retried shortly. A subscriber's
 * first values go through the same serialised read as updates, so an initial value can never arrive
 * after, and overwrite, a newer one.
 */
export class CoalescingFeed<S extends FeedSubscriber<V>, V> {
  readonly subscribers = new Set<S>();
  private reading = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly unlisten: Array<() => void> = [];

  constructor(private readonly options: CoalescingFeedOptions) {
    const listen = options.listen;
    if (listen) {
      this.unlisten.push(listen.hub.on(listen.channel, (payload) => listen.notified(payload)));
      this.unlisten.push(listen.hub.onResync(() => listen.resync()));
    }
  }

  /** Adds a subscriber made around its new queue; closing the queue removes it. */
  subscribe(make: (queue: LatestQueue<V>) => S): S {
    let subscriber: S | undefined;
    const queue = new LatestQueue<V>(() => {
      if (subscriber) this.subscribers.delete(subscriber);
      if (this.subscribers.size === 0) this.options.idle?.();
    });
    subscriber = make(queue);
    this.subscribers.add(subscriber);
    return subscriber;
  }

  /** Something was marked: read it soon (at once after the read in progress). */
  schedule(): void {
    if (!this.active()) {
      this.options.clear();
      return;
    }
    if (this.reading || !this.options.pending()) return;
    this.reading = true;
    setImmediate(() => void this.flush());
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.unlisten.forEach((off) => off());
    for (const s of this.subscribers) s.queue.close();
  }

  private async flush(): Promise<void> {
    try {
      while (this.active() && this.options.pending()) await this.options.read();
    } catch (err) {
      if (this.closed) return;
      this.options.logger.warn({ err: (err as Error).message }, `${this.options.name} fan-out read failed; retrying`);
      this.retryTimer = setTimeout(() => {
        this.reading = false;
        this.options.readFailed();
        this.schedule();
      }, this.options.retryMs ?? 500);
      return;
    }
    this.reading = false;
    if (!this.active()) this.options.clear();
  }

  private active(): boolean {
    if (this.closed) return false;
    return this.subscribers.size > 0 || this.options.readWithoutSubscribers === true;
  }
}
