import { describe, expect, it } from 'vitest';
import { BatchingPolicy, CATCH_UP_LAG_MS, QUIET_MS, type BatchingInput, type Waiting } from '../../src/cdf/batching-policy.ts';

// The batching policy alone: synthetic sizes and times, no Postgres, no clock.
const OPTIONS = { batchMaxRows: 1_000, batchMaxMs: 3_000, statusIntervalMs: 1_000 };

/** `rows` waiting, received from `oldest` to `newest` (ms), the newest committed at the source at `committed`. */
function waiting(rows: number, oldest: number, newest = oldest, committed = newest): Waiting {
  return { rows, oldestReceivedAt: oldest, newestReceivedAt: newest, newestCommitTime: committed };
}

function input(now: number, w: Waiting | undefined, extra: Partial<BatchingInput> = {}): BatchingInput {
  return { now, waiting: w, writerBusy: false, unsettledSince: undefined, force: false, ...extra };
}

describe('the sync batching policy', () => {
  it('lets a trickle wait up to batchMaxMs, then commits it', () => {
    const policy = new BatchingPolicy(OPTIONS);
    expect(policy.decide(input(1_000, waiting(3, 1_000)))).toBe('wait');
    expect(policy.decide(input(3_999, waiting(5, 1_000, 3_900)))).toBe('wait');
    expect(policy.decide(input(4_000, waiting(5, 1_000, 3_900)))).toBe('commit');
    expect(policy.decide(input(4_000, undefined))).toBe('wait');
  });

  it('commits at once when batchMaxRows wait, and settles right after a commit while the flow is live', () => {
    const policy = new BatchingPolicy(OPTIONS);
    expect(policy.decide(input(10, waiting(1_000, 0, 10)))).toBe('commit');
    // Nothing else waits: the commit's purge and acknowledgement follow it.
    expect(policy.settleAfterCommit(0, 1_000)).toBe(true);
  });

  it('commits a fair batch at once when it committed at the source long ago (a backlog), and gathers settlements', () => {
    const policy = new BatchingPolicy(OPTIONS);
    const now = 100_000;
    const old = now - CATCH_UP_LAG_MS - 1;
    expect(policy.decide(input(now, waiting(199, now, now, old)))).toBe('wait'); // not a fair batch yet (batchMaxRows / 5)
    expect(policy.decide(input(now, waiting(200, now, now, old)))).toBe('commit');
    // Catching up with more rows already waiting: settle every batchMaxRows rows, not after every commit.
    expect(policy.settleAfterCommit(500, 200)).toBe(false);
    expect(policy.settleAfterCommit(500, 999)).toBe(false);
    expect(policy.settleAfterCommit(500, 1_000)).toBe(true);
    expect(policy.settleAfterCommit(0, 200)).toBe(true);
    // Unsettled commits with nothing waiting during a backlog: settled after batchMaxMs, or when forced.
    expect(policy.decide(input(now + 10, undefined, { unsettledSince: now }))).toBe('wait');
    expect(policy.decide(input(now + 10, undefined, { unsettledSince: now, force: true }))).toBe('settle');
    expect(policy.decide(input(now + 3_000, undefined, { unsettledSince: now }))).toBe('settle');
  });

  it('settles unsettled commits as soon as nothing waits outside a backlog', () => {
    const policy = new BatchingPolicy(OPTIONS);
    expect(policy.decide(input(50, undefined, { unsettledSince: 40 }))).toBe('settle');
    expect(policy.decide(input(50, undefined))).toBe('wait');
  });

  it('commits a fair batch when the flow pauses (the end of a burst), and then the burst’s tail whatever its size', () => {
    const policy = new BatchingPolicy(OPTIONS);
    expect(policy.decide(input(1_000 + QUIET_MS, waiting(200, 900, 1_000)))).toBe('wait');
    expect(policy.decide(input(1_001 + QUIET_MS, waiting(200, 900, 1_000)))).toBe('commit');
    // A small tail right after: not a burst (no commit was forced by size or lag), so it waits out batchMaxMs.
    expect(policy.decide(input(1_400 + QUIET_MS, waiting(3, 1_300, 1_300)))).toBe('wait');

    const burst = new BatchingPolicy(OPTIONS);
    expect(burst.decide(input(5_000, waiting(1_000, 4_900, 5_000)))).toBe('commit'); // forced by size
    // Within batchMaxMs of that commit, a small tail goes as soon as the flow pauses.
    expect(burst.decide(input(5_200, waiting(3, 5_100, 5_100)))).toBe('wait');
    expect(burst.decide(input(5_101 + QUIET_MS, waiting(3, 5_100, 5_100)))).toBe('commit');
    expect(burst.decide(input(9_000, waiting(3, 8_900, 8_900)))).toBe('wait'); // the burst is over
  });

  it('pauses reading while the writer is busy and two batches wait, and never commits meanwhile', () => {
    const policy = new BatchingPolicy(OPTIONS);
    expect(policy.decide(input(0, waiting(1_999, 0), { writerBusy: true }))).toBe('wait');
    expect(policy.decide(input(0, waiting(2_000, 0), { writerBusy: true }))).toBe('pause-reading');
    expect(policy.decide(input(99_999, waiting(5, 0), { writerBusy: true, force: true }))).toBe('wait');
    expect(policy.decide(input(0, undefined, { writerBusy: true, unsettledSince: 0 }))).toBe('wait');
  });

  it('commits the tail of a backlog at the first keepalive between transactions', () => {
    const policy = new BatchingPolicy(OPTIONS);
    expect(policy.keepaliveReceived(false)).toBe(false); // no backlog: a steady trickle waits for batchMaxMs
    expect(policy.decide(input(10_000, waiting(200, 10_000, 10_000, 5_000)))).toBe('commit'); // catching up
    expect(policy.keepaliveReceived(true)).toBe(false); // inside a transaction: more is coming
    expect(policy.keepaliveReceived(false)).toBe(true);
    expect(policy.tailWaiting).toBe(true);
    expect(policy.decide(input(10_001, waiting(2, 10_001)))).toBe('commit');
    expect(policy.tailWaiting).toBe(false);
    expect(policy.keepaliveReceived(false)).toBe(false); // once per backlog
  });

  it('requests a keepalive only while idle, at most once per period', () => {
    const policy = new BatchingPolicy(OPTIONS);
    expect(policy.tickMs).toBe(QUIET_MS);
    expect(policy.keepaliveDue(0, false)).toBe(false);
    expect(policy.keepaliveDue(0, true)).toBe(true);
    expect(policy.keepaliveDue(999, true)).toBe(false);
    expect(policy.keepaliveDue(1_000, true)).toBe(true);
    const fast = new BatchingPolicy({ ...OPTIONS, batchMaxMs: 20, statusIntervalMs: 1_000 });
    expect(fast.tickMs).toBe(50);
  });

  it('forgets the last session’s flow on a new session', () => {
    const policy = new BatchingPolicy(OPTIONS);
    expect(policy.decide(input(10_000, waiting(200, 10_000, 10_000, 5_000)))).toBe('commit');
    expect(policy.keepaliveReceived(false)).toBe(true);
    policy.newSession();
    expect(policy.tailWaiting).toBe(false);
    expect(policy.keepaliveReceived(false)).toBe(false);
    expect(policy.keepaliveDue(10_000, true)).toBe(true);
  });
});
