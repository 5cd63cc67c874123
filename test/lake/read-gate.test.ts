import { describe, expect, it } from 'vitest';
import { GraphQLError } from 'graphql';
import { LakeReadGate } from '../../src/lake/read-gate.ts';

/**
 * Client reads of the lake take turns on DuckDB (which shares libuv's small thread pool with the
 * change-feed sync): a bounded number run, a few wait, the rest are refused at once; a read that
 * runs too long, or whose client left, is interrupted inside DuckDB. Real DuckDB queries throughout.
 */

const SLOW = 'SELECT sum(a.range * b.range) AS s FROM range(200000) a, range(200000) b'; // 4e10 rows: only an interrupt ends it
const QUICK = 'SELECT count(*) AS n FROM range(200000)';

function codeOf(err: unknown): unknown {
  return err instanceof GraphQLError ? err.extensions.code : (err as Error)?.message;
}

describe('LakeReadGate', () => {
  it('runs one read at a time, queues a few and refuses the rest with LAKE_BUSY', async () => {
    const gate = new LakeReadGate({ concurrency: 1, maxQueued: 8, timeoutMs: 30_000 });
    let running = 0;
    let most = 0;
    const outcomes = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        gate.run(undefined, async (connection) => {
          running++;
          most = Math.max(most, running);
          try {
            return (await connection.runAndReadAll(QUICK)).getRowObjects()[0]!.n;
          } finally {
            running--;
          }
        }),
      ),
    );
    expect(most).toBe(1);
    const fulfilled = outcomes.filter((o) => o.status === 'fulfilled');
    const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [codeOf(o.reason)] : []));
    expect(fulfilled).toHaveLength(9);
    expect(refused).toEqual(Array(11).fill('LAKE_BUSY'));
    expect(gate.running).toBe(0);
    expect(gate.queued).toBe(0);
  });

  it('interrupts a read that runs past its timeout, and the next read runs', async () => {
    const gate = new LakeReadGate({ concurrency: 1, maxQueued: 2, timeoutMs: 300 });
    const slow = gate.run(undefined, async (connection) => connection.runAndReadAll(SLOW));
    const next = gate.run(undefined, async (connection) => (await connection.runAndReadAll(QUICK)).getRowObjects()[0]!.n);
    await expect(slow).rejects.toMatchObject({ extensions: { code: 'LAKE_TIMEOUT' } });
    expect(Number(await next)).toBe(200000);
  });

  it('interrupts a running read when its client goes away, and drops a waiting one', async () => {
    const gate = new LakeReadGate({ concurrency: 1, maxQueued: 2, timeoutMs: 60_000 });
    const running = new AbortController();
    const waiting = new AbortController();
    const first = gate.run(running.signal, async (connection) => connection.runAndReadAll(SLOW));
    const second = gate.run(waiting.signal, async (connection) => connection.runAndReadAll(QUICK));
    expect(gate.queued).toBe(1);
    waiting.abort(new Error('client left while waiting'));
    await expect(second).rejects.toThrow('client left while waiting');
    expect(gate.queued).toBe(0);
    await new Promise((r) => setTimeout(r, 100)); // let the slow read start inside DuckDB
    running.abort(new Error('client left'));
    await expect(first).rejects.toBeDefined();
    expect(gate.running).toBe(0);
  });
});
