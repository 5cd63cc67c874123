import { describe, expect, it } from 'vitest';
import { CachedRead } from '../../src/services/cached-read.ts';

/** The read behind /metrics and Query.pipeline: one database read per period, however many callers. */
describe('CachedRead', () => {
  it('shares one in-flight read between concurrent callers and reuses it until the period ends', async () => {
    let reads = 0;
    let now = 1_000;
    let release: (v: number) => void = () => undefined;
    const cache = new CachedRead(
      () => {
        reads++;
        return new Promise<number>((resolve) => (release = resolve));
      },
      5_000,
      () => now,
    );
    const callers = Array.from({ length: 20 }, () => cache.get());
    expect(reads).toBe(1);
    release(42);
    expect(await Promise.all(callers)).toEqual(Array(20).fill(42));
    now += 4_999;
    expect(await cache.get()).toBe(42);
    expect(reads).toBe(1);
    now += 1;
    const next = cache.get();
    expect(reads).toBe(2);
    release(43);
    expect(await next).toBe(43);
  });

  it('does not keep a failed read: the next caller tries again', async () => {
    let attempt = 0;
    const cache = new CachedRead(async () => {
      attempt++;
      if (attempt === 1) throw new Error('database not reachable');
      return 'ok';
    }, 5_000);
    await expect(cache.get()).rejects.toThrow('database not reachable');
    expect(await cache.get()).toBe('ok');
  });
});
