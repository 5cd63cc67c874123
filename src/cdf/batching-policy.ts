// When the sync writes a Delta commit, when it settles (purges and acknowledges) what the lake
// holds, and when it stops reading: decisions only, from sizes, times and events it is given. No
// clock, no I/O: the streaming session asks, and does what it is told (test/cdf/batching-policy.test.ts).
//
// The aims, in order: a change waits at most batchMaxMs; commits are large while the sync works
// through a backlog (fewer, larger Parquet files and purge statements); the tail of a backlog or of
// a burst is committed as soon as the flow pauses instead of waiting out batchMaxMs; and memory
// stays bounded (reading pauses while two batches wait for the writer).

export interface BatchingOptions {
  /** A commit when this many rows wait. */
  batchMaxRows: number;
  /** ...or when the oldest waiting transaction arrived this long ago. */
  batchMaxMs: number;
  /** Keepalive request and state refresh period while idle. */
  statusIntervalMs: number;
}

/** Transactions that committed this long before they arrive mean the sync is working through a backlog. */
export const CATCH_UP_LAG_MS = 1_000;
/** Nothing received for this long after a fair batch: the end of a burst. */
export const QUIET_MS = 250;

/** The complete transactions waiting for a commit. */
export interface Waiting {
  rows: number;
  /** When the oldest of them was received (ms). */
  oldestReceivedAt: number;
  /** When the newest was received, and when it committed at the source (ms, the server's clock). */
  newestReceivedAt: number;
  newestCommitTime: number;
}

export interface BatchingInput {
  now: number;
  /** Undefined: nothing waits. */
  waiting: Waiting | undefined;
  /** A commit or a settlement is running. */
  writerBusy: boolean;
  /** Commits durable in the lake whose shadow rows are not purged nor their transactions acknowledged. */
  unsettledSince: number | undefined;
  /** Commit what waits now (the tail of a drained backlog, or settle at once). */
  force: boolean;
}

/**
 * - `wait`: nothing to do now;
 * - `pause-reading`: the writer is busy and two batches wait: stop reading the stream until it is done;
 * - `commit`: write what waits as one Delta commit;
 * - `settle`: purge and acknowledge the unsettled commits.
 */
export type BatchingDecision = 'wait' | 'pause-reading' | 'commit' | 'settle';

export class BatchingPolicy {
  /** A commit was started by size or lag: the sync is working through a backlog. */
  private backlog = false;
  /** When a commit was last forced by size or lag. */
  private lastBurstCommit = Number.NEGATIVE_INFINITY;
  /** The server caught up after a backlog: commit what waits now rather than after batchMaxMs. */
  private drainTail = false;
  private lastKeepaliveRequest = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: BatchingOptions) {}

  /** How often the session asks (a timer): often enough to notice a pause in the flow. */
  get tickMs(): number {
    return Math.min(QUIET_MS, this.keepaliveEveryMs);
  }

  private get keepaliveEveryMs(): number {
    return Math.min(this.options.statusIntervalMs, Math.max(50, this.options.batchMaxMs));
  }

  /** A new replication session: what was learnt of the last one's flow no longer holds. */
  newSession(): void {
    this.backlog = false;
    this.drainTail = false;
    this.lastKeepaliveRequest = Number.NEGATIVE_INFINITY;
  }

  decide(input: BatchingInput): BatchingDecision {
    const { now, waiting, force } = input;
    const { batchMaxRows, batchMaxMs } = this.options;
    if (input.writerBusy) {
      // Back-pressure: stop reading while a large backlog waits for the writer (resumed when it is done).
      return waiting && waiting.rows >= 2 * batchMaxRows ? 'pause-reading' : 'wait';
    }
    if (!waiting) {
      this.drainTail = false;
      // Caught up (or settling was deferred long enough): purge and acknowledge what is in the lake.
      const unsettled = input.unsettledSince;
      if (unsettled !== undefined && (force || !this.backlog || now - unsettled >= batchMaxMs)) return 'settle';
      return 'wait';
    }
    const full = waiting.rows >= batchMaxRows;
    // A fair batch waiting, the writer free, and either the sync is behind the source (what arrives
    // committed a while ago) or the flow has paused (the end of a burst): commit it now rather than
    // wait for batchMaxRows or batchMaxMs. Whatever arrives meanwhile makes the next, larger commit.
    const fairBatch = waiting.rows >= Math.max(1, Math.floor(batchMaxRows / 5));
    const catchingUp = fairBatch && now - waiting.newestCommitTime > CATCH_UP_LAG_MS;
    // After a burst (a commit forced by size or lag lately), its tail goes at the pause whatever its size.
    const inBurst = now - this.lastBurstCommit < batchMaxMs;
    const paused = (fairBatch || inBurst) && now - waiting.newestReceivedAt > QUIET_MS;
    if (!force && !this.drainTail && !full && !catchingUp && !paused && now - waiting.oldestReceivedAt < batchMaxMs) return 'wait';
    if (full || catchingUp) {
      this.backlog = true;
      this.lastBurstCommit = now;
    }
    this.drainTail = false;
    return 'commit';
  }

  /**
   * A commit is durable: settle it now, or (while catching up, with more rows already waiting for the
   * next commit) let unsettled commits gather up to batchMaxRows rows first.
   */
  settleAfterCommit(rowsWaiting: number, unsettledRows: number): boolean {
    return !(this.backlog && rowsWaiting > 0 && unsettledRows < this.options.batchMaxRows);
  }

  /**
   * A keepalive between transactions after a backlog: the walsender has sent all it had (it sends one
   * unasked when it waits for WAL). Returns true when what waits should be committed now instead of
   * after batchMaxMs; a steady trickle still gets one commit per batchMaxMs.
   */
  keepaliveReceived(inTransaction: boolean): boolean {
    if (!this.backlog || inTransaction) return false;
    this.backlog = false;
    this.drainTail = true;
    return true;
  }

  /** A commit finished: true when the tail of a drained backlog arrived meanwhile and goes at once. */
  get tailWaiting(): boolean {
    return this.drainTail;
  }

  /**
   * While idle, a keepalive is requested every so often: its WAL position lets the committed LSN
   * advance while nothing arrives. True when one is due now (and counts it as sent).
   */
  keepaliveDue(now: number, idle: boolean): boolean {
    if (!idle || now - this.lastKeepaliveRequest < this.keepaliveEveryMs) return false;
    this.lastKeepaliveRequest = now;
    return true;
  }
}
