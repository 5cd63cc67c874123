// cdf_sync: the change feed from Postgres into the Delta lake (docs/ARCHITECTURE.md §6, §8, H1, H7, H8).
//
// It streams the shadow table's inserts-only publication through a logical replication slot (pgoutput)
// and appends every change event to the lake table with the Delta writer of src/lake/. This file is
// the process-facing part: start, stop, status, and the loop that opens a new session after a lost
// connection. The parts, in the order a change meets them:
//   replication-stream.ts  the replication library, behind one adaptor
//   transactions.ts        pgoutput messages -> whole source transactions
//   batching-policy.ts     when to commit, settle, pause (pure decisions)
//   streaming.ts           Delta commits, then purge and acknowledge behind them
//   shadow-purge.ts        deleting the shadow rows the lake holds, and finding them after a crash
//   snapshot.ts            the first commit on a new slot, and its recovery
//   sync-state.ts          the lakets.cdf_state row
//   session.ts             one connection's lifetime: checks, lake table, snapshot or not, streaming
//
// Progress goes to lakets.cdf_state: STREAMING only while healthy; committed_lsn = every source
// transaction that committed before it is in the lake (advanced to the server's WAL position on idle
// keepalives, which the sync requests every statusIntervalMs); updated_at refreshed with it.

import pg from 'pg';
import { TICK_TABLE, type CdfCrashPoint } from '../config.ts';
import { formatLsn, parseLsn } from '../lake/lsn.ts';
import type { Logger } from '../logger.ts';
import { BatchingPolicy } from './batching-policy.ts';
import { withClient } from './connections.ts';
import { CrashInjection } from './crash-injection.ts';
import { RestartPoints } from './restart-points.ts';
import { SyncSession } from './session.ts';
import { CdfSyncFatalError, ignoreWithReason, type CdfSyncStatus } from './status.ts';
import { SyncStateRow } from './sync-state.ts';
import type { LakeStoreConfig } from '../config/lake-store.ts';
import { openLakeTable } from '../lake/table.ts';
import type { LakeSession } from './session.ts';


export interface CdfSyncOptions {
  /** A direct (unpooled) connection string: replication does not go through poolers (ARCHITECTURE.md H12). */
  url: string;
  /** The source table (sync enabled with lakets.enable_sync). Default: the tick table. */
  table?: string;
  /** The lake the changes go to (config.lake.store): the Delta table is `<lake>/<table>`. */
  lake: LakeStoreConfig;
  /** How long checkpoints remember removed files (config.lake.retentionMs; default 7 days). */
  retentionMs?: number;
  /** A Delta commit when this many rows are waiting... (default 100,000) */
  batchMaxRows?: number;
  /** ...or when the oldest waiting transaction is this old (default 10 s). */
  batchMaxMs?: number;
  /** Delta checkpoint every N commits (default 10). */
  checkpointInterval?: number;
  /** Keepalive request and cdf_state refresh period (default 1 s). */
  statusIntervalMs?: number;
  /** Wait before reconnecting after a lost connection (default 1 s). */
  reconnectDelayMs?: number;
  /** Rows per chunk read from the shadow for a snapshot (default 50,000). */
  snapshotChunkRows?: number;
  logger?: Logger;
  /** Crash injection for tests: SIGKILL this process at that point of a commit... */
  crashAt?: CdfCrashPoint;
  /** ...once this many Delta commits have succeeded in this process (default 0: the first commit). */
  crashAfterCommits?: number;
}

export class CdfSync {
  readonly table: string;
  readonly status: CdfSyncStatus = {
    state: 'STOPPED',
    committedLsn: 0n,
    deltaVersion: -1,
    rowsSynced: 0,
    commits: 0,
    skippedTransactions: 0,
  };

  private readonly options: Required<Omit<CdfSyncOptions, 'logger' | 'crashAt' | 'crashAfterCommits'>>;
  private readonly log: Logger | undefined;
  private readonly state: SyncStateRow;
  private readonly policy: BatchingPolicy;
  private readonly crashes: CrashInjection;
  private readonly restartPoints: RestartPoints;
  /** The lake table, its writer and whether the store proved create-if-absent: kept across sessions. */
  private lake: LakeSession | undefined;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private started: { resolve: () => void; reject: (e: Error) => void; promise: Promise<void> } | undefined;
  private session: SyncSession | undefined;
  private wakeLoop: (() => void) | undefined;
  private readonly lsnWaiters = new Set<{ lsn: bigint; resolve: () => void }>();

  constructor(options: CdfSyncOptions) {
    this.table = options.table ?? TICK_TABLE;
    this.options = {
      table: this.table,
      batchMaxRows: 100_000,
      batchMaxMs: 10_000,
      checkpointInterval: 10,
      statusIntervalMs: 1_000,
      reconnectDelayMs: 1_000,
      snapshotChunkRows: 50_000,
      retentionMs: 7 * 86_400_000,
      ...options,
    };
    this.log = options.logger;
    this.state = new SyncStateRow(this.table, this.status);
    this.policy = new BatchingPolicy(this.options);
    this.crashes = new CrashInjection(options.crashAt, options.crashAfterCommits);
    this.restartPoints = new RestartPoints(this.log);
  }

  /**
   * Starts the sync. Resolves once it streams (after a snapshot when it had to create its slot);
   * rejects on a configuration error (wal_level, sync not enabled, lake bound to another source).
   * Lost connections are retried without rejecting.
   */
  async start(): Promise<void> {
    if (this.loop) return this.started?.promise;
    this.stopping = false;
    let resolve!: () => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The rejection is for whoever awaits start(); run() has logged its cause already, so a caller
    // that does not wait for it must not turn it into an unhandled rejection.
    promise.catch(ignoreWithReason(this.log, 'start() was not awaited; its failure is logged above'));
    this.started = { resolve, reject, promise };
    this.loop = this.run();
    return promise;
  }

  /** Writes what is complete, records STOPPED and closes the connections. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeLoop?.();
    this.session?.interrupt(new Error('stopping'));
    await this.loop;
    this.loop = undefined;
  }

  /** Resolves when every transaction committed before `lsn` is in the lake. */
  waitForCommittedLsn(lsn: bigint, timeoutMs = 30_000): Promise<void> {
    if (this.status.committedLsn >= lsn) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = {
        lsn,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.lsnWaiters.delete(waiter);
        reject(new Error(`cdf_sync did not reach ${formatLsn(lsn)} within ${timeoutMs} ms (at ${formatLsn(this.status.committedLsn)})`));
      }, timeoutMs);
      this.lsnWaiters.add(waiter);
    });
  }

  private advanceCommitted(lsn: bigint): void {
    if (lsn <= this.status.committedLsn) return;
    this.status.committedLsn = lsn;
    for (const waiter of this.lsnWaiters) {
      if (lsn >= waiter.lsn) {
        this.lsnWaiters.delete(waiter);
        waiter.resolve();
      }
    }
  }

  private newSession(lake: LakeSession): SyncSession {
    return new SyncSession({
      url: this.options.url,
      table: this.table,
      retentionMs: this.options.retentionMs,
      checkpointInterval: this.options.checkpointInterval,
      snapshotChunkRows: this.options.snapshotChunkRows,
      statusIntervalMs: this.options.statusIntervalMs,
      status: this.status,
      state: this.state,
      policy: this.policy,
      crashes: this.crashes,
      restartPoints: this.restartPoints,
      log: this.log,
      lake,
      isStopping: () => this.stopping,
      advanceCommitted: (lsn) => this.advanceCommitted(lsn),
      streaming: () => this.started?.resolve(),
    });
  }

  /** Sessions until a stop or an error retrying cannot fix; a lost connection opens a new session. */
  private async run(): Promise<void> {
    // The store's client (and a remote lake's local cache) for the sync's lifetime.
    const lake = (this.lake ??= { table: openLakeTable(this.options.lake, this.table) });
    try {
      await this.runSessions(lake);
    } finally {
      this.lake = undefined;
      await lake.table.close().catch(ignoreWithReason(this.log, 'closing the lake store failed; nothing is left to write'));
    }
  }

  private async runSessions(lake: LakeSession): Promise<void> {
    while (!this.stopping) {
      const session = (this.session = this.newSession(lake));
      try {
        await session.run();
      } catch (error) {
        const err = error as Error;
        if (this.stopping) break;
        this.status.lastError = err.message;
        if (err instanceof CdfSyncFatalError) {
          this.status.state = err.state;
          this.log?.error({ table: this.table, err: err.message }, 'cdf_sync stopped');
          await session
            .recordState(err.state, { error: err.message })
            .catch(ignoreWithReason(this.log, 'could not record why the sync stopped (the database is unreachable)'));
          this.started?.reject(err);
          break;
        }
        this.status.state = 'ERROR';
        this.log?.warn({ table: this.table, err: err.message }, 'cdf_sync session failed; reconnecting');
        await session
          .recordState('ERROR', { error: err.message, retrying: true })
          .catch(ignoreWithReason(this.log, 'could not record the failed session (the database is unreachable); the next session records its state'));
      } finally {
        await session.close();
        this.session = undefined;
      }
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.reconnectDelayMs);
        this.wakeLoop = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.status.state !== 'UNAVAILABLE' && !(this.status.state === 'ERROR' && !this.stopping)) {
      this.status.state = 'STOPPED';
      await withClient(this.options.url, this.log, (client) => this.state.record(client, 'STOPPED', {})).catch((error: Error) =>
        this.log?.warn({ table: this.table, err: error.message }, 'cdf_sync: could not record STOPPED; lakets.cdf_state shows the last state until the next start'),
      );
    }
    this.started?.reject(new Error('cdf_sync stopped before it streamed'));
  }
}

/**
 * Runs the sync until everything committed in the database when it started is in the lake, then
 * stops it. For one-off runs (npm run jobs) and tests. The target is the WAL *insert* position:
 * with asynchronous commit the write position can still be behind a commit that has returned.
 */
export async function runCdfSyncOnce(options: CdfSyncOptions & { timeoutMs?: number }): Promise<CdfSyncStatus> {
  const sync = new CdfSync(options);
  try {
    await sync.start();
    const client = new pg.Client({ connectionString: options.url });
    await client.connect();
    let target: bigint;
    try {
      const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
      target = parseLsn(rows[0]?.lsn as string);
    } finally {
      await client.end();
    }
    await sync.waitForCommittedLsn(target, options.timeoutMs ?? 60_000);
    return { ...sync.status };
  } finally {
    await sync.stop();
  }
}
