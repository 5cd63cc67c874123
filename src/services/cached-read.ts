/**
 * A read shared by every caller for a short while: at most one read in flight (concurrent callers
 * share it) and its result reused for `ttlMs`. For signals many clients poll (the pipeline status
 * behind /metrics and Query.pipeline): their cost on the database is then one read per period
 * whatever the number of pollers.
 */
export class CachedRead<T> {
  private value: T | undefined;
  private readAt = 0;
  private inFlight: Promise<T> | undefined;

  constructor(
    private readonly read: () => Promise<T>,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(): Promise<T> {
    if (this.value !== undefined && this.now() - this.readAt < this.ttlMs) return Promise.resolve(this.value);
    this.inFlight ??= this.read()
      .then((value) => {
        this.value = value;
        this.readAt = this.now();
        return value;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }
}
