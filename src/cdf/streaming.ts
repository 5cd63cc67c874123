// The streaming phase of a sync session: replication messages in, Delta commits out, the shadow
// purged and the slot acknowledged behind them (docs/ARCHITECTURE.md §6, H1, H7).
//
// Exactly once, on this side:
// - transactions the lake already holds (commit LSN at or below the table's txn version, read before
//   anything is received) are skipped: the slot re-sends them after a crash between a Delta commit
//   and its acknowledgement; only their shadow rows may still need purging;
// - only whole transactions are committed, each Delta commit carrying txn{appId, version = commit LSN
//   of its last transaction};
// - a commit's shadow rows are purged before the slot is acknowledged past its transactions, so the
//   shadow holds every change the lake may not have;
// - the slot is only ever acknowledged with a position durable in the lake.
// When to commit and settle is the batching policy's decision (batching-policy.ts).

import type pg from 'pg';
import { formatLsn } from '../lake/lsn.ts';
import { DeltaCommitConflictError } from '../lake/writer-errors.ts';
import type { DeltaTableWriter, LakeRow } from '../lake/writer.ts';
import type { Logger } from '../logger.ts';
import type { BatchingPolicy, Waiting } from './batching-policy.ts';
import type { CrashInjection } from './crash-injection.ts';
import { ReplicationStream } from './replication-stream.ts';
import type { RestartPoints } from './restart-points.ts';
import { purgeShadowRanges, recordedRangesInfo, seqRangesAsText, type SeqRange } from './shadow-purge.ts';
import type { SourceTable } from './source-table.ts';
import { concurrentWriterError, ignoreWithReason, type CdfState, type CdfSyncStatus } from './status.ts';
import type { SyncStateRow } from './sync-state.ts';
import { TransactionAssembler, type ReceivedTransaction } from './transactions.ts';

/** What the streaming phase works with, given by its session. */
export interface StreamingContext {
  url: string;
  source: SourceTable;
  /** The session's control connection: purges, state rows, restart points. */
  control: pg.Client;
  writer: DeltaTableWriter;
  appId: string;
  status: CdfSyncStatus;
  state: SyncStateRow;
  policy: BatchingPolicy;
  crashes: CrashInjection;
  restartPoints: RestartPoints;
  statusIntervalMs: number;
  log: Logger | undefined;
  isStopping(): boolean;
  advanceCommitted(lsn: bigint): void;
  /** The lake table moved on under this writer: it must be reopened. */
  writerConflict(): void;
  /** The stream is up and STREAMING is recorded. */
  streaming(): void;
}

interface PendingTransaction extends ReceivedTransaction {
  receivedAt: number;
}

/** Commits durable in Delta whose shadow rows are not purged and whose transactions are not acknowledged. */
interface Unsettled {
  ranges: SeqRange[];
  rows: number;
  endLsn: bigint;
  since: number;
}

export class StreamingPhase {
  private readonly transactions: TransactionAssembler;
  private readonly stream: ReplicationStream;
  private ready: PendingTransaction[] = [];
  private readyRows = 0;
  /** Shadow rows of skipped (already synced) transactions, purged with the next commit or when idle. */
  private skippedSeqs: bigint[] = [];
  /** A Delta commit, or the start of a settlement, in progress. */
  private flushing: Promise<void> | undefined;
  /**
   * The purge and acknowledgement of the last Delta commit, which run while the next commit's files
   * are written (at most one behind): the slot is still acknowledged only after the purge.
   */
  private purging: Promise<void> | undefined;
  private unsettled: Unsettled | undefined;
  private failure: Error | undefined;
  private failed: (() => void) | undefined;
  private readonly log: Logger | undefined;

  constructor(
    private readonly ctx: StreamingContext,
    /** The lake's txn version for this table: transactions at or below it are in the lake already. */
    private appliedVersion: bigint | undefined,
    /** The flush position acknowledged or to acknowledge: durable in the lake. */
    private durableFlush: bigint,
  ) {
    this.log = ctx.log;
    this.transactions = new TransactionAssembler(ctx.source);
    this.stream = new ReplicationStream(
      { url: ctx.url, slot: ctx.source.slot, publication: ctx.source.publication, binary: ctx.source.binaryValues, log: ctx.log },
      {
        message: (message) => this.guard(() => {
          const txn = this.transactions.accept(message);
          if (txn) this.received(txn);
          this.maybeFlush(false);
        }),
        keepalive: (walEnd, shouldRespond) => this.guard(() => {
          this.onKeepalive(walEnd, shouldRespond);
          if (ctx.policy.keepaliveReceived(this.transactions.inTransaction)) this.maybeFlush(true);
        }),
        started: () => {
          ctx.status.state = 'STREAMING';
          this.log?.info({ table: ctx.source.table, slot: ctx.source.slot, deltaVersion: ctx.writer.version }, 'cdf_sync streaming');
          this.recordState('STREAMING').then(
            () => ctx.streaming(),
            (error: Error) => this.fail(error),
          );
        },
        failed: (error) => this.fail(error),
      },
    );
  }

  /** Ends the phase: the first error wins; a stop passes Error('stopping'). */
  fail(error: Error): void {
    this.failure ??= error;
    this.failed?.();
  }

  /** Streams until the stream fails or the sync stops; on a stop, first writes and settles what is complete. */
  async run(): Promise<void> {
    const { policy } = this.ctx;
    policy.newSession();
    const ended = new Promise<void>((resolve) => (this.failed = resolve));
    if (this.failure || this.ctx.isStopping()) this.fail(new Error('stopping'));
    const timer = setInterval(
      () => this.guard(() => {
        this.maybeFlush(false);
        if (policy.keepaliveDue(Date.now(), this.idle())) void this.stream.requestKeepalive(this.durableFlush);
      }),
      policy.tickMs,
    );
    this.stream.start();
    try {
      await ended;
    } finally {
      clearInterval(timer);
    }
    if (this.ctx.isStopping()) await this.finishBeforeStop();
    await this.stream.stop();
    if (!this.ctx.isStopping() && this.failure) throw this.failure;
  }

  /** After the phase ended: waits for what is still running, then closes the replication connection. */
  async close(): Promise<void> {
    this.failed = undefined;
    // Their errors have ended the phase already (through fail) and are reported with it.
    if (this.flushing) await this.flushing.catch(ignoreWithReason(this.log, 'a commit failed while the session ended'));
    if (this.purging) await this.purging.catch(ignoreWithReason(this.log, 'a settlement failed while the session ended'));
    // Whatever was not durable is re-sent by the slot on the next session, skipped if the lake holds it.
    this.unsettled = undefined;
    await this.stream.destroy();
  }

  private guard(work: () => void): void {
    try {
      work();
    } catch (error) {
      this.fail(error as Error);
    }
  }

  /** Nothing received and not durable, nothing being written, purged or waiting to be settled. */
  private idle(): boolean {
    return (
      !this.transactions.inTransaction && this.ready.length === 0 && this.flushing === undefined && this.purging === undefined &&
      this.unsettled === undefined
    );
  }

  private received(txn: ReceivedTransaction): void {
    if (this.appliedVersion !== undefined && txn.commitLsn <= this.appliedVersion) {
      // Already in the lake (the slot re-sent it after a crash): only its purge may be missing.
      this.ctx.status.skippedTransactions += 1;
      this.skippedSeqs.push(...txn.seqs);
      if (this.idle()) this.acknowledge(txn.endLsn);
      return;
    }
    if (txn.rows.length === 0) return;
    this.ready.push({ ...txn, receivedAt: Date.now() });
    this.readyRows += txn.rows.length;
  }

  private onKeepalive(walEnd: bigint, shouldRespond: boolean): void {
    if (this.idle()) {
      // Every transaction the server decoded before walEnd has been received, and all of it is durable.
      this.ctx.advanceCommitted(walEnd);
      this.acknowledge(walEnd);
      if (this.skippedSeqs.length > 0) {
        const seqs = this.skippedSeqs;
        this.skippedSeqs = [];
        this.track(purgeShadowRanges(this.ctx.control, this.ctx.source.table, seqRangesAsText(seqs)));
      }
      if (Date.now() - this.ctx.state.lastWriteAt >= this.ctx.statusIntervalMs / 2 && this.ctx.status.state === 'STREAMING') {
        this.recordState('STREAMING').catch((error: Error) => this.fail(error));
      }
    } else if (shouldRespond) {
      this.acknowledge(this.durableFlush);
    }
  }

  private waiting(): Waiting | undefined {
    const oldest = this.ready[0];
    const newest = this.ready[this.ready.length - 1];
    if (!oldest || !newest) return undefined;
    return { rows: this.readyRows, oldestReceivedAt: oldest.receivedAt, newestReceivedAt: newest.receivedAt, newestCommitTime: newest.commitTimeMs };
  }

  private maybeFlush(force: boolean): void {
    const decision = this.ctx.policy.decide({
      now: Date.now(),
      waiting: this.waiting(),
      writerBusy: this.flushing !== undefined,
      unsettledSince: this.unsettled?.since,
      force,
    });
    switch (decision) {
      case 'pause-reading':
        this.stream.pause();
        return;
      case 'settle':
        this.track(this.settle(), () => this.stream.resume());
        return;
      case 'commit':
        this.track(this.commit(), () => {
          this.stream.resume();
          // The tail of a drained backlog arrived while this commit ran: commit it right away.
          if (this.ctx.policy.tailWaiting && !this.ctx.isStopping()) this.maybeFlush(true);
        });
        return;
      case 'wait':
        return;
    }
  }

  /** Runs `work` as the one write in progress; its failure ends the phase. */
  private track(work: Promise<void>, after?: () => void): void {
    const flushing: Promise<void> = work.finally(() => {
      this.flushing = undefined;
      after?.();
    });
    this.flushing = flushing;
    flushing.catch((error: Error) => this.fail(error));
  }

  /** Writes every complete transaction waiting as one Delta commit, then purges, acknowledges, records. */
  private async commit(): Promise<void> {
    const { ctx } = this;
    const batch = this.ready;
    this.ready = [];
    this.readyRows = 0;
    const last = batch[batch.length - 1];
    if (!last) return;
    const rows: LakeRow[] = [];
    const seqs: bigint[] = this.skippedSeqs;
    this.skippedSeqs = [];
    for (const txn of batch) {
      for (const row of txn.rows) rows.push(row);
      for (const seq of txn.seqs) seqs.push(seq);
    }
    const started = Date.now();
    // The shadow rows this commit holds: purged when it settles, and recorded in the commit so that a
    // crash followed by a lost slot can still purge them (purgeRecentCommits).
    const ranges = seqRangesAsText(seqs);
    ctx.crashes.beginCommit(ctx.status.commits);
    let result;
    try {
      result = await ctx.writer.commit({
        rows,
        txn: { appId: ctx.appId, version: last.commitLsn },
        info: {
          transactions: batch.length,
          firstLsn: formatLsn((batch[0] as PendingTransaction).commitLsn),
          lastLsn: formatLsn(last.commitLsn),
          ...recordedRangesInfo(ranges),
        },
      });
    } catch (error) {
      if (error instanceof DeltaCommitConflictError) {
        ctx.writerConflict();
        throw concurrentWriterError(error);
      }
      throw error;
    }
    ctx.status.commits += 1;
    this.appliedVersion = last.commitLsn;
    ctx.status.deltaVersion = result.version;
    ctx.status.rowsSynced = ctx.writer.numRecords;
    if (result.checkpointError) this.log?.warn({ err: result.checkpointError }, 'cdf_sync: checkpoint failed; the next one will cover it');
    this.log?.debug(
      { table: ctx.source.table, version: result.version, rows: result.rows, transactions: batch.length, ms: Date.now() - started },
      'cdf_sync commit',
    );
    await ctx.crashes.at('commit-visible-before-ack');
    const unsettled = (this.unsettled ??= { ranges: [], rows: 0, endLsn: 0n, since: Date.now() });
    for (const range of ranges) unsettled.ranges.push(range);
    unsettled.rows += seqs.length;
    unsettled.endLsn = last.endLsn;
    if (ctx.policy.settleAfterCommit(this.readyRows, unsettled.rows)) await this.settle();
  }

  /**
   * Purges the shadow rows of the unsettled commits, then acknowledges their transactions — in the
   * background, while the next commit is written; one settlement at a time, in commit order, so
   * that the shadow rows of a commit are gone before the slot may forget its transactions.
   */
  private async settle(): Promise<void> {
    const { ctx } = this;
    if (this.purging) await this.purging;
    const batch = this.unsettled;
    if (!batch) return;
    this.unsettled = undefined;
    const settled: Promise<void> = (async () => {
      await purgeShadowRanges(ctx.control, ctx.source.table, batch.ranges);
      this.acknowledge(batch.endLsn);
      ctx.advanceCommitted(batch.endLsn);
      await ctx.crashes.at('after-ack');
      await this.recordState('STREAMING');
      await ctx.restartPoints.write(ctx.control);
    })().finally(() => {
      if (this.purging === settled) this.purging = undefined;
    });
    this.purging = settled;
    settled.catch((error: Error) => this.fail(error));
  }

  /** Confirms `position` (never less than what was confirmed before) to the slot. */
  private acknowledge(position: bigint): void {
    if (position <= 0n) return;
    if (position > this.durableFlush) this.durableFlush = position;
    this.stream.confirm(this.durableFlush);
  }

  private recordState(state: CdfState): Promise<void> {
    return this.ctx.state.record(this.ctx.control, state, {});
  }

  /** A clean stop: write what is complete, settle it, leave a restart point; the rest is re-sent next time. */
  private async finishBeforeStop(): Promise<void> {
    const log = this.log;
    if (this.flushing) await this.flushing.catch(ignoreWithReason(log, 'the commit in progress failed at stop; the slot re-sends its transactions'));
    if (this.ready.length > 0) {
      await this.commit().catch((error: Error) =>
        log?.warn({ err: error.message }, 'cdf_sync: could not commit the waiting transactions before stopping; the slot re-sends them on the next start'),
      );
    }
    await this.settle().catch(ignoreWithReason(log, 'settling at stop failed; the next start purges and acknowledges again'));
    if (this.purging) await this.purging.catch(ignoreWithReason(log, 'settling at stop failed; the next start purges and acknowledges again'));
    await this.settleRestartPoint().catch(ignoreWithReason(log, 'no restart point at stop; the next start decodes a little more WAL'));
    await this.recordState('STOPPED').catch(ignoreWithReason(log, 'could not record STOPPED; the sync records it once more after the session'));
  }

  /**
   * On a clean stop with everything received durable: logs a restart point and waits (≤ 1 s) until an
   * idle keepalive past it has been acknowledged, so that the next start does not decode the WAL of the
   * last busy stretch again. Acknowledges nothing that onKeepalive would not.
   */
  private async settleRestartPoint(): Promise<void> {
    if (!this.ctx.restartPoints.available || !this.idle()) return;
    const target = await this.ctx.restartPoints.writeAndLocate(this.ctx.control);
    const deadline = Date.now() + 1_000;
    while (this.durableFlush < target && this.idle() && Date.now() < deadline) {
      await this.stream.requestKeepalive(this.durableFlush);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
