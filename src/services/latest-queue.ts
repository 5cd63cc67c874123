/**
 * A per-subscriber queue that keeps only the latest value per key: a slow consumer gets the
 * newest state of every key it missed, never a backlog of stale ones (docs/ARCHITECTURE.md §9 "coalesced per
 * key, latest wins"). Iterating it yields values in the order their keys first became pending.
 */
export class LatestQueue<T> implements AsyncIterableIterator<T> {
  private readonly pending = new Map<string, T>();
  private waiter: ((result: IteratorResult<T>) => void) | undefined;
  private done = false;

  constructor(private readonly onClose: () => void = () => undefined) {}

  push(key: string, value: T): void {
    if (this.done) return;
    if (this.waiter) {
      const resolve = this.waiter;
      this.waiter = undefined;
      resolve({ value, done: false });
      return;
    }
    // Map.set on a pending key replaces its value in place: latest wins, and the key keeps its turn.
    this.pending.set(key, value);
  }

  get size(): number {
    return this.pending.size;
  }

  next(): Promise<IteratorResult<T>> {
    const first = this.pending.entries().next();
    if (!first.done) {
      this.pending.delete(first.value[0]);
      return Promise.resolve({ value: first.value[1], done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiter = resolve));
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(err?: unknown): Promise<IteratorResult<T>> {
    this.close();
    return Promise.reject(err);
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.pending.clear();
    this.waiter?.({ value: undefined, done: true });
    this.waiter = undefined;
    this.onClose();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
