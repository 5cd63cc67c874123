// cdf_sync: the change feed from Postgres into the Delta lake (docs/ARCHITECTURE.md §6, §8, H1, H7, H8).
//
// It streams the shadow table's inserts-only publication through a logical replication slot (pgoutput)
// and appends every change event to <lake>/<table> with the Delta writer of src/lake/.
//
// Exactly-once:
// - every Delta commit carries txn{appId (stable per table), version = commit LSN of the last source
//   transaction it holds}; on start the sync reads that version FIRST and drops every transaction
//   whose commit LSN is at or below it (a crash between the Delta commit and the slot's
//   acknowledgement re-sends them);
// - one source transaction never spans two Delta commits (only complete transactions are batched);
// - the slot is acknowledged only with a position that is durable in Delta (auto-acknowledge is off,
//   its timer too: acknowledge.timeoutSeconds = 0, ARCHITECTURE.md H1); keepalives are answered with it;
// - values are kept as Postgres text (the package's parser would make Dates of timestamps and drop
//   the microseconds), or typed from their binary form on PostgreSQL 14+: see pgoutput-rows.ts.
//
// The slot is created by the sync itself together with an exported snapshot: the shadow rows visible
// in it (changes committed before the slot existed, or after a slot was lost: the shadow keeps every
// change the lake does not have) are written as the first commit, with txn version = consistent
// point - 1; streaming continues from the consistent point. A marker in cdf_state.detail makes a
// crash in the middle of this redo it.
//
// Progress goes to lakets.cdf_state: STREAMING only while healthy; committed_lsn = every source
// transaction that committed before it is in the lake (advanced to the server's WAL position on idle
// keepalives, which the sync requests every statusIntervalMs); updated_at refreshed with it.

import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { LogicalReplicationService } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import { RowPgoutputPlugin, type RowPgoutputMessage } from './pgoutput-rows.ts';
import {
  changeFeedAppId,
  changeFeedColumns,
  changeFeedPartition,
  sourceBinding,
  type SourceColumn,
} from '../lake/change-feed-table.ts';
import { formatLsn, formatMicrosUtc, parseLsn } from '../lake/lsn.ts';
import { commitFileName, DeltaTableWriter, type LakeRow, type LakeTimestamp, type LakeValue, type WriterStage } from '../lake/writer.ts';
import { DeltaCommitConflictError, DeltaTableMismatchError } from '../lake/writer-errors.ts';
import type { Logger } from '../logger.ts';
import { TICK_TABLE, type CdfCrashPoint } from '../config.ts';


export interface CdfSyncOptions {
  /** A direct (unpooled) connection string: replication does not go through poolers (ARCHITECTURE.md H12). */
  url: string;
  /** The source table (sync enabled with lakets.enable_sync). Default: the tick table. */
  table?: string;
  /** The lake root: the table is written to <lakeDir>/<table>. */
  lakeDir: string;
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

export type CdfState = 'STOPPED' | 'STARTING' | 'SNAPSHOT' | 'STREAMING' | 'ERROR' | 'UNAVAILABLE';

export interface CdfSyncStatus {
  state: CdfState;
  /** Every source transaction that committed before this LSN is durable in the lake. */
  committedLsn: bigint;
  deltaVersion: number;
  /** Change events in the lake table. */
  rowsSynced: number;
  commits: number;
  skippedTransactions: number;
  lastError?: string;
}

/** Errors that retrying cannot fix (configuration): the sync stops and says why. */
export class CdfSyncFatalError extends Error {
  override readonly name: string = 'CdfSyncFatalError';
  constructor(
    message: string,
    readonly state: CdfState = 'ERROR',
  ) {
    super(message);
  }
}

interface PendingTxn {
  commitLsn: bigint;
  endLsn: bigint;
  rows: LakeRow[];
  seqs: bigint[];
  receivedAt: number;
  /** The source commit's time (ms since the epoch, the server's clock). */
  commitTimeMs: number;
}

interface InProgressTxn {
  commitLsn: bigint;
  /** The values of every row's _lsn and _commit_timestamp. */
  commitTimestamp: LakeTimestamp;
  commitTimeMs: number;
  rows: LakeRow[];
  seqs: bigint[];
}

interface TableInfo {
  schema: string;
  shadowTable: string;
  publication: string;
  slot: string;
  database: string;
  systemIdentifier: string;
  columns: SourceColumn[];
  timeColumn: string;
  /** The server sends binary values on request (pgoutput's binary option, PostgreSQL 14+). */
  binaryValues: boolean;
}

const SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1';
/** Beyond this many ranges a commit does not record them (its purge after a crash is skipped). */
const MAX_RECORDED_RANGES = 50_000;
/** How many of the latest commits a snapshot purges the recorded shadow rows of. */
const RECHECK_COMMITS = 64;

/**
 * The shadow `_seq` ranges a commit recorded (commitInfo.lakets.shadowSeqRanges); [] for a commit
 * with no shadow rows or not written by the sync, undefined when it had too many ranges to record.
 */
async function recordedShadowRanges(writer: DeltaTableWriter, version: number): Promise<[string, string][] | undefined> {
  let first: string;
  try {
    first = (await readFile(path.join(writer.tableDir, '_delta_log', commitFileName(version)), 'utf8')).split('\n', 1)[0] ?? '{}';
  } catch {
    return []; // cleaned up long ago
  }
  const info = (JSON.parse(first) as { commitInfo?: { lakets?: { shadowSeqRanges?: [string, string][]; transactions?: number } } }).commitInfo?.lakets;
  if (info?.shadowSeqRanges) return info.shadowSeqRanges;
  // A sync commit without ranges had too many to record; anything else holds no shadow rows.
  return info?.transactions !== undefined ? undefined : [];
}
const TEXT_TYPES = { getTypeParser: () => (value: string) => value };
/** Transactions that committed this long before they arrive mean the sync is working through a backlog. */
const CATCH_UP_LAG_MS = 1_000;
/** Nothing received for this long after a fair batch: the end of a burst. */
const QUIET_MS = 250;

/** Sorted, merged [lo, hi] ranges of sequence values. */
export function seqRanges(seqs: readonly bigint[]): [bigint, bigint][] {
  const sorted = [...seqs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const ranges: [bigint, bigint][] = [];
  for (const seq of sorted) {
    const last = ranges[ranges.length - 1];
    if (last && seq <= last[1] + 1n) {
      if (seq > last[1]) last[1] = seq;
    } else ranges.push([seq, seq]);
  }
  return ranges;
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

  private readonly opts: Required<Omit<CdfSyncOptions, 'logger' | 'crashAt' | 'crashAfterCommits'>> &
    Pick<CdfSyncOptions, 'logger' | 'crashAt' | 'crashAfterCommits'>;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private started: { resolve: () => void; reject: (e: Error) => void; promise: Promise<void> } | undefined;
  private writer: DeltaTableWriter | undefined;
  private info: TableInfo | undefined;
  private ctl: pg.Client | undefined;
  private service: LogicalReplicationService | undefined;
  private sessionFailed: ((error: Error) => void) | undefined;
  private wakeLoop: (() => void) | undefined;

  // Replication state of the current session.
  private appliedVersion: bigint | undefined;
  private current: InProgressTxn | undefined;
  private ready: PendingTxn[] = [];
  private readyRows = 0;
  private skippedSeqs: bigint[] = [];
  private flushing: Promise<void> | undefined;
  /**
   * The purge and acknowledgement of the last Delta commit, which run while the next commit's files
   * are written (at most one behind): the slot is still acknowledged only after the purge.
   */
  private purging: Promise<void> | undefined;
  /**
   * Commits durable in Delta whose shadow rows are not purged and whose transactions are not
   * acknowledged yet: while catching up they are settled every batchMaxRows rows rather than after
   * every commit (fewer, larger purge statements).
   */
  private unsettled: { ranges: [string, string][]; rows: number; endLsn: bigint; since: number } | undefined;
  /** The flush position acknowledged or to acknowledge: durable in the lake. */
  private durableFlush = 0n;
  private lastStateWrite = 0;
  /** Index of the commit in progress (Delta commits made by this process before it). */
  private commitIndex = 0;
  private paused = false;
  /** A commit was started by the row threshold: the sync is working through a backlog. */
  private backlog = false;
  /** When a commit was last forced by size or lag. */
  private lastBurstCommit = 0;
  /** The server caught up after a backlog: commit what waits now rather than after batchMaxMs. */
  private drainTail = false;
  /** pg_log_standby_snapshot() is callable (it needs a superuser or an EXECUTE grant). */
  private logRunningXacts = true;
  private readonly lsnWaiters = new Set<{ lsn: bigint; resolve: () => void }>();

  constructor(options: CdfSyncOptions) {
    this.table = options.table ?? TICK_TABLE;
    this.opts = {
      table: this.table,
      batchMaxRows: 100_000,
      batchMaxMs: 10_000,
      checkpointInterval: 10,
      statusIntervalMs: 1_000,
      reconnectDelayMs: 1_000,
      snapshotChunkRows: 50_000,
      ...options,
    };
  }

  private get log(): Logger | undefined {
    return this.opts.logger;
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
    promise.catch(() => undefined);
    this.started = { resolve, reject, promise };
    this.loop = this.run();
    return promise;
  }

  /** Writes what is complete, records STOPPED and closes the connections. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakeLoop?.();
    this.sessionFailed?.(new Error('stopping'));
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

  /** Crash injection: SIGKILL at `point` of the commit with index crashAfterCommits (0 = the first). */
  private async crash(point: CdfCrashPoint): Promise<void> {
    if (this.opts.crashAt !== point) return;
    if (this.commitIndex < (this.opts.crashAfterCommits ?? 0)) return;
    // After the acknowledgement: give the status message time to leave the socket first.
    if (point === 'after-ack') await new Promise((resolve) => setTimeout(resolve, 300));
    process.stderr.write(`cdf_sync: crash injected at ${point}\n`);
    process.kill(process.pid, 'SIGKILL');
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.session();
      } catch (error) {
        const err = error as Error;
        if (this.stopping) break;
        this.status.lastError = err.message;
        if (err instanceof CdfSyncFatalError) {
          this.status.state = err.state;
          this.log?.error({ table: this.table, err: err.message }, 'cdf_sync stopped');
          await this.recordState(err.state, { error: err.message }).catch(() => undefined);
          this.started?.reject(err);
          break;
        }
        this.status.state = 'ERROR';
        this.log?.warn({ table: this.table, err: err.message }, 'cdf_sync session failed; reconnecting');
        await this.recordState('ERROR', { error: err.message, retrying: true }).catch(() => undefined);
      } finally {
        await this.closeSession();
      }
      if (this.stopping) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.opts.reconnectDelayMs);
        this.wakeLoop = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.status.state !== 'UNAVAILABLE' && !(this.status.state === 'ERROR' && !this.stopping)) {
      this.status.state = 'STOPPED';
      await this.withControl((c) => this.recordStateOn(c, 'STOPPED', {})).catch(() => undefined);
    }
    this.started?.reject(new Error('cdf_sync stopped before it streamed'));
  }

  private async withControl<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: this.opts.url, application_name: 'lakets-cdf-sync', options: SESSION_OPTIONS });
    client.on('error', () => undefined);
    await client.connect();
    try {
      return await work(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  private async closeSession(): Promise<void> {
    this.sessionFailed = undefined;
    if (this.flushing) await this.flushing.catch(() => undefined);
    if (this.purging) await this.purging.catch(() => undefined);
    this.unsettled = undefined; // re-sent by the slot, skipped and purged on the next session
    const service = this.service;
    this.service = undefined;
    if (service) await service.destroy().catch(() => undefined);
    const ctl = this.ctl;
    this.ctl = undefined;
    if (ctl) await ctl.end().catch(() => undefined);
    // Whatever was not durable is re-sent by the slot on the next session.
    this.current = undefined;
    this.ready = [];
    this.readyRows = 0;
    this.paused = false;
    this.backlog = false;
    this.drainTail = false;
  }

  /** One connection's lifetime: set-up, snapshot when needed, then streaming until an error or stop. */
  private async session(): Promise<void> {
    const ctl = new pg.Client({ connectionString: this.opts.url, application_name: 'lakets-cdf-sync', options: SESSION_OPTIONS });
    ctl.on('error', (error) => this.sessionFailed?.(error));
    this.ctl = ctl;
    await ctl.connect();

    const { rows: levels } = await ctl.query<{ wal_level: string }>('SHOW wal_level');
    const walLevel = levels[0]?.wal_level;
    if (walLevel !== 'logical') {
      throw new CdfSyncFatalError(
        `wal_level is '${walLevel}', the change-feed sync needs wal_level = logical: set it in postgresql.conf ` +
          `(or the provider's parameter group) and restart Postgres. Tiering stays closed until the sync streams.`,
        'UNAVAILABLE',
      );
    }
    // One sync per table: a second instance waits instead of fighting over the slot and cdf_state.
    const { rows: locked } = await ctl.query<{ ok: boolean }>(
      `SELECT pg_try_advisory_lock(hashtext('lakets.cdf_sync'), hashtext($1)) AS ok`,
      [this.table],
    );
    if (!locked[0]?.ok) throw new Error(`another cdf_sync process holds table ${this.table}`);

    const info = await this.loadTableInfo(ctl);
    this.info = info;
    await this.recordState('STARTING', {});

    if (!this.writer) {
      try {
        this.writer = await DeltaTableWriter.open({
          tableDir: path.join(this.opts.lakeDir, this.table),
          columns: changeFeedColumns(info.columns),
          partition: changeFeedPartition(info.timeColumn),
          configuration: sourceBinding({
            systemIdentifier: info.systemIdentifier,
            database: info.database,
            slot: info.slot,
            table: `${info.schema}.${this.table}`,
          }),
          tableName: this.table,
          checkpointInterval: this.opts.checkpointInterval,
          onStage: (stage: WriterStage) => {
            if (stage === 'parquet-written' || stage === 'commit-temp-written') void this.crash(stage);
          },
        });
      } catch (error) {
        if (error instanceof DeltaTableMismatchError) throw new CdfSyncFatalError(error.message);
        throw error;
      }
    }
    const writer = this.writer;
    const appId = changeFeedAppId(`${info.schema}.${this.table}`);
    // The lake is the truth: read its txn version before anything is received.
    this.appliedVersion = writer.txnVersion(appId);
    this.status.deltaVersion = writer.version;
    this.status.rowsSynced = writer.numRecords;

    const { rows: stateRows } = await ctl.query<{ detail: Record<string, unknown> }>(
      'SELECT detail FROM lakets.cdf_state WHERE table_name = $1',
      [this.table],
    );
    const marker = stateRows[0]?.detail?.['snapshot'] as { consistentPoint?: string } | undefined;
    const { rows: slots } = await ctl.query<{ database: string; active: boolean; confirmed_flush_lsn: string | null }>(
      'SELECT database, active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1',
      [info.slot],
    );
    const slot = slots[0];
    if (slot && slot.database !== info.database) {
      throw new CdfSyncFatalError(`replication slot ${info.slot} belongs to database ${slot.database}, not ${info.database}`);
    }
    if (slot?.active) throw new Error(`replication slot ${info.slot} is in use by another process`);

    let needSnapshot = !slot || this.appliedVersion === undefined;
    if (marker) {
      const cp = marker.consistentPoint ? parseLsn(marker.consistentPoint) : undefined;
      if (cp === undefined || this.appliedVersion === undefined || this.appliedVersion < cp - 1n) needSnapshot = true;
      else await this.finishSnapshotAfterCrash(ctl, writer);
    }
    // Status messages never report less than the slot already confirmed.
    this.durableFlush = !needSnapshot && slot?.confirmed_flush_lsn ? parseLsn(slot.confirmed_flush_lsn) : 0n;
    if (needSnapshot) this.durableFlush = await this.snapshot(ctl, info, writer, appId, slot !== undefined);
    await this.stream(ctl, info, writer, appId);
  }

  private async loadTableInfo(ctl: pg.Client): Promise<TableInfo> {
    const { rows } = await ctl.query<{
      table_schema: string;
      shadow_table: string;
      publication_name: string;
      slot_name: string;
      db: string;
      sysid: string;
    }>(
      `SELECT t.table_schema, t.shadow_table, t.publication_name, t.slot_name, current_database() AS db,
              (SELECT system_identifier::text FROM pg_control_system()) AS sysid
         FROM lakets.cdf_tables t WHERE t.table_name = $1`,
      [this.table],
    ).catch((error: Error) => {
      if (/lakets\.cdf_tables/.test(error.message)) {
        throw new CdfSyncFatalError(`the change feed is not installed in this database (${error.message}): run the migrations`);
      }
      throw error;
    });
    const row = rows[0];
    if (!row) {
      throw new CdfSyncFatalError(`sync is not enabled for ${this.table}: run SELECT lakets.enable_sync('${this.table}')`);
    }
    const { rows: columns } = await ctl.query<{ name: string; type: string }>(
      `SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type
         FROM pg_attribute a
        WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [row.table_schema, this.table],
    );
    const { rows: chrono } = await ctl.query<{ time_column: string }>(
      `SELECT time_column FROM lakets.chronotables WHERE table_name = $1`,
      [this.table],
    ).catch(() => ({ rows: [] as { time_column: string }[] }));
    const timeColumn = chrono[0]?.time_column ?? columns.find((c) => c.type === 'timestamp with time zone')?.name;
    const { rows: version } = await ctl.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
    if (!timeColumn) throw new CdfSyncFatalError(`${this.table} has no timestamptz column to partition the lake by day`);
    try {
      changeFeedColumns(columns.map((c) => ({ name: c.name, pgType: c.type })));
    } catch (error) {
      throw new CdfSyncFatalError((error as Error).message);
    }
    return {
      schema: row.table_schema,
      shadowTable: row.shadow_table,
      publication: row.publication_name,
      slot: row.slot_name,
      database: row.db,
      systemIdentifier: row.sysid,
      columns: columns.map((c) => ({ name: c.name, pgType: c.type })),
      timeColumn,
      binaryValues: Number(version[0]?.v ?? 0) >= 140_000,
    };
  }

  private async recordState(state: CdfState, detail: Record<string, unknown>): Promise<void> {
    const ctl = this.ctl;
    if (!ctl) return;
    await this.recordStateOn(ctl, state, detail);
  }

  private async recordStateOn(client: pg.Client, state: CdfState, detail: Record<string, unknown>): Promise<void> {
    this.lastStateWrite = Date.now();
    const committed = this.status.committedLsn > 0n ? formatLsn(this.status.committedLsn) : null;
    await client.query(
      `UPDATE lakets.cdf_state
          SET state = $2,
              committed_lsn = CASE WHEN $3::pg_lsn IS NULL THEN committed_lsn
                                   ELSE greatest(coalesce(committed_lsn, '0/0'::pg_lsn), $3::pg_lsn) END,
              delta_version = CASE WHEN $4::bigint >= 0 THEN $4::bigint ELSE delta_version END,
              rows_synced = $5,
              updated_at = clock_timestamp(),
              detail = (detail - 'error' - 'retrying') || $6::jsonb
        WHERE table_name = $1`,
      [
        this.table,
        state,
        committed,
        this.status.deltaVersion,
        this.status.rowsSynced,
        JSON.stringify({ commits: this.status.commits, skippedTransactions: this.status.skippedTransactions, ...detail }),
      ],
    );
  }

  /**
   * Creates the slot with an exported snapshot and writes the shadow rows visible in it as one
   * commit (txn version = consistent point - 1). The marker in cdf_state.detail.snapshot lets a
   * restart tell a finished snapshot from an interrupted one.
   */
  private async snapshot(ctl: pg.Client, info: TableInfo, writer: DeltaTableWriter, appId: string, slotExists: boolean): Promise<bigint> {
    this.status.state = 'SNAPSHOT';
    await ctl.query(
      `UPDATE lakets.cdf_state SET state = 'SNAPSHOT', updated_at = clock_timestamp(),
              detail = detail || '{"snapshot": {"consistentPoint": null}}'::jsonb WHERE table_name = $1`,
      [this.table],
    );
    if (slotExists) await ctl.query('SELECT pg_drop_replication_slot($1)', [info.slot]);
    if (writer.version >= 0) await this.purgeRecentCommits(ctl, writer);

    const repl = new pg.Client({ connectionString: this.opts.url, replication: 'database', options: SESSION_OPTIONS } as pg.ClientConfig);
    repl.on('error', () => undefined);
    await repl.connect();
    const snapClient = new pg.Client({ connectionString: this.opts.url, application_name: 'lakets-cdf-snapshot', options: SESSION_OPTIONS });
    snapClient.on('error', () => undefined);
    try {
      const created = await repl.query<{ consistent_point: string; snapshot_name: string }>(
        `CREATE_REPLICATION_SLOT ${pg.escapeIdentifier(info.slot)} LOGICAL pgoutput (SNAPSHOT 'export')`,
      );
      const cpText = created.rows[0]?.consistent_point;
      const snapshotName = created.rows[0]?.snapshot_name;
      if (!cpText || !snapshotName) throw new Error('CREATE_REPLICATION_SLOT returned no snapshot');
      const cp = parseLsn(cpText);
      await ctl.query(
        `UPDATE lakets.cdf_state SET detail = detail || jsonb_build_object('snapshot', jsonb_build_object('consistentPoint', $2::text))
          WHERE table_name = $1`,
        [this.table, cpText],
      );

      await snapClient.connect();
      await snapClient.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await snapClient.query(`SET TRANSACTION SNAPSHOT ${pg.escapeLiteral(snapshotName)}`);
      const cols = info.columns.map((c) => pg.escapeIdentifier(c.name)).join(', ');
      await snapClient.query(
        `DECLARE lakets_snapshot NO SCROLL CURSOR FOR
           SELECT ${cols}, _change_type, _seq FROM lakets_cdf.${pg.escapeIdentifier(info.shadowTable)}`,
      );
      const version = cp - 1n;
      const lsnText = version.toString();
      const at = formatMicrosUtc(BigInt(Date.now()) * 1000n);
      const seqs: bigint[] = [];
      const width = info.columns.length;
      const chunkRows = this.opts.snapshotChunkRows;
      const chunks = async function* (): AsyncGenerator<LakeRow[]> {
        for (;;) {
          const fetched = await snapClient.query<(string | null)[]>({
            text: `FETCH ${chunkRows} FROM lakets_snapshot`,
            rowMode: 'array',
            types: TEXT_TYPES,
          });
          if (fetched.rows.length === 0) return;
          const rows: LakeRow[] = [];
          for (const r of fetched.rows) {
            seqs.push(BigInt(r[width + 1] as string));
            rows.push([...r.slice(0, width + 1), lsnText, at]);
          }
          yield rows;
        }
      };
      this.commitIndex = this.status.commits;
      const result = await writer.commit({
        chunks: chunks(),
        txn: { appId, version },
        // The shadow rows this snapshot holds, so that a restart can purge them if this process dies
        // before it does (see finishSnapshotAfterCrash).
        info: () => {
          const ranges = seqRanges(seqs);
          return {
            snapshot: { consistentPoint: cpText },
            ...(ranges.length <= MAX_RECORDED_RANGES ? { shadowSeqRanges: ranges.map(([lo, hi]) => [lo.toString(), hi.toString()]) } : {}),
          };
        },
      });
      await snapClient.query('COMMIT');
      this.status.commits += 1;
      this.status.deltaVersion = result.version;
      this.status.rowsSynced = writer.numRecords;
      this.appliedVersion = version;
      this.log?.info({ table: this.table, rows: result.rows, version: result.version, consistentPoint: cpText }, 'cdf_sync snapshot written');
      await this.crash('commit-visible-before-ack');
      await this.purge(ctl, seqs);
      // Everything committed before the consistent point is now in the lake.
      this.advanceCommitted(cp);
      await ctl.query(`UPDATE lakets.cdf_state SET detail = detail - 'snapshot' WHERE table_name = $1`, [this.table]);
      await this.crash('after-ack');
      return cp;
    } finally {
      await snapClient.end().catch(() => undefined);
      await repl.end().catch(() => undefined);
    }
  }

  /**
   * The snapshot commit is in the lake but the sync died before it purged the shadow rows and cleared
   * the marker: purge them now from the ranges recorded in that commit (the latest one: streaming
   * starts only after the marker is cleared), then clear the marker.
   */
  private async finishSnapshotAfterCrash(ctl: pg.Client, writer: DeltaTableWriter): Promise<void> {
    const ranges = await recordedShadowRanges(writer, writer.version);
    if (ranges && ranges.length > 0) {
      await this.purgeRanges(ctl, ranges);
    } else {
      this.log?.warn({ table: this.table }, 'cdf_sync: the interrupted snapshot recorded no shadow ranges; its shadow rows stay');
    }
    await ctl.query(`UPDATE lakets.cdf_state SET detail = detail - 'snapshot' WHERE table_name = $1`, [this.table]);
  }

  private async purge(ctl: pg.Client, seqs: readonly bigint[]): Promise<void> {
    if (seqs.length === 0) return;
    await this.purgeRanges(ctl, seqRanges(seqs).map(([lo, hi]) => [lo.toString(), hi.toString()]));
  }

  private async purgeRanges(ctl: pg.Client, ranges: readonly (readonly [string, string])[]): Promise<void> {
    await ctl.query('SELECT lakets.purge_synced_shadow($1, $2::bigint[], $3::bigint[])', [
      this.table,
      ranges.map((r) => r[0]),
      ranges.map((r) => r[1]),
    ]);
  }

  /**
   * Before a snapshot (a new slot): purge the shadow rows of the latest commits, which the lake holds
   * but whose purge may not have happened (a crash between a commit and its settlement, then the slot
   * lost). Unpurged, the snapshot would write them a second time. Unsettled commits are few (their
   * rows stay under batchMaxRows, plus one settlement in progress); the latest RECHECK_COMMITS are read.
   */
  private async purgeRecentCommits(ctl: pg.Client, writer: DeltaTableWriter): Promise<void> {
    for (let version = writer.version; version >= 0 && version > writer.version - RECHECK_COMMITS; version--) {
      const ranges = await recordedShadowRanges(writer, version);
      if (ranges === undefined) {
        this.log?.warn({ table: this.table, version }, 'cdf_sync: a recent commit recorded no shadow ranges; its shadow rows, if any remain, are snapshotted again');
      } else if (ranges.length > 0) {
        await this.purgeRanges(ctl, ranges);
      }
    }
  }

  /**
   * Writes a running-transactions record to the WAL. A logical slot's restart_lsn only moves past such
   * records (Postgres logs one every 15 s of activity, and at checkpoints): without one after a busy
   * stretch, a restart decodes all of that WAL again before it sends anything new. Optional: without the
   * privilege the slot advances at Postgres's own pace.
   */
  private async logRestartPoint(ctl: pg.Client): Promise<void> {
    if (!this.logRunningXacts) return;
    try {
      await ctl.query('SELECT pg_log_standby_snapshot()');
    } catch (error) {
      this.logRunningXacts = false;
      this.log?.debug({ table: this.table, err: (error as Error).message }, 'cdf_sync: pg_log_standby_snapshot() unavailable');
    }
  }

  /**
   * On a clean stop with everything received durable: logs a restart point and waits (≤ 1 s) until an
   * idle keepalive past it has been acknowledged, so that the next start does not decode the WAL of the
   * last busy stretch again. Acknowledges nothing that onKeepalive would not.
   */
  private async settleRestartPoint(ctl: pg.Client, service: LogicalReplicationService): Promise<void> {
    if (!this.logRunningXacts || !this.idle()) return;
    const { rows } = await ctl.query<{ lsn: string }>('SELECT pg_log_standby_snapshot()::text AS lsn');
    const target = parseLsn(rows[0]?.lsn as string);
    const deadline = Date.now() + 1_000;
    while (this.durableFlush < target && this.idle() && Date.now() < deadline) {
      if (this.durableFlush > 0n) await service.acknowledge(formatLsn(this.durableFlush - 1n), true).catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private ackFlush(position: bigint): void {
    if (position <= 0n || !this.service) return;
    this.durableFlush = position > this.durableFlush ? position : this.durableFlush;
    // The package reports lsn + 1 as flushed; ask for position - 1 so the slot confirms exactly `position`.
    void this.service.acknowledge(formatLsn(this.durableFlush - 1n)).catch(() => undefined);
  }

  private async stream(ctl: pg.Client, info: TableInfo, writer: DeltaTableWriter, appId: string): Promise<void> {
    const service = new LogicalReplicationService(
      { connectionString: this.opts.url, application_name: 'lakets-cdf-sync-stream', options: SESSION_OPTIONS },
      { acknowledge: { auto: false, timeoutSeconds: 0 }, flowControl: { enabled: false } },
    );
    this.service = service;
    const plugin = new RowPgoutputPlugin({ protoVersion: 1, publicationNames: [info.publication], binary: info.binaryValues });
    const width = info.columns.length;
    const names = info.columns.map((c) => c.name);

    let failure: Error | undefined;
    const failed = new Promise<void>((resolve) => {
      this.sessionFailed = (error: Error) => {
        failure ??= error;
        resolve();
      };
    });
    const fail = (error: Error) => this.sessionFailed?.(error);
    if (this.stopping) fail(new Error('stopping'));

    service.on('error', (error: Error) => fail(error));
    service.on('data', (_lsn: string, message: Pgoutput.Message) => {
      try {
        this.onMessage(message as unknown as RowPgoutputMessage, info, names, width);
        this.maybeFlush(ctl, writer, appId, false);
      } catch (error) {
        fail(error as Error);
      }
    });
    service.on('heartbeat', (walEnd: string, _timestamp: number, shouldRespond: boolean) => {
      try {
        this.onKeepalive(ctl, parseLsn(walEnd), shouldRespond);
        // A keepalive between transactions after a backlog: the walsender has sent all it had (it sends one
        // unasked when it waits for WAL). The last transactions of the backlog are committed now instead of
        // waiting batchMaxMs; a steady trickle still gets one commit per batchMaxMs.
        if (this.backlog && this.current === undefined) {
          this.backlog = false;
          this.drainTail = true;
          this.maybeFlush(ctl, writer, appId, true);
        }
      } catch (error) {
        fail(error as Error);
      }
    });
    service.on('start', () => {
      this.status.state = 'STREAMING';
      this.log?.info({ table: this.table, slot: info.slot, deltaVersion: writer.version }, 'cdf_sync streaming');
      this.recordState('STREAMING', {}).then(
        () => this.started?.resolve(),
        (error: Error) => fail(error),
      );
    });

    const keepaliveEvery = Math.min(this.opts.statusIntervalMs, Math.max(50, this.opts.batchMaxMs));
    let lastKeepaliveRequest = 0;
    const timer = setInterval(() => {
      try {
        this.maybeFlush(ctl, writer, appId, false);
        if (this.idle() && Date.now() - lastKeepaliveRequest >= keepaliveEvery) {
          // Ask for a keepalive: its WAL position lets committed_lsn advance while nothing arrives.
          lastKeepaliveRequest = Date.now();
          if (this.durableFlush > 0n) void service.acknowledge(formatLsn(this.durableFlush - 1n), true).catch(() => undefined);
        }
      } catch (error) {
        fail(error as Error);
      }
    }, Math.min(QUIET_MS, keepaliveEvery));

    const subscribed = service.subscribe(plugin, info.slot, '0/00000000').then(
      () => fail(new Error('replication stream ended')),
      (error: Error) => fail(error),
    );
    try {
      await failed;
    } finally {
      clearInterval(timer);
    }
    if (this.stopping) {
      // Write what is complete before leaving; the rest is re-sent on the next start.
      if (this.flushing) await this.flushing.catch(() => undefined);
      if (this.ready.length > 0) await this.flush(ctl, writer, appId).catch(() => undefined);
      await this.settle(ctl).catch(() => undefined);
      if (this.purging) await this.purging.catch(() => undefined);
      await this.settleRestartPoint(ctl, service).catch(() => undefined);
      await this.recordState('STOPPED', {}).catch(() => undefined);
    }
    await service.stop().catch(() => undefined);
    await subscribed.catch(() => undefined);
    if (!this.stopping && failure) throw failure;
  }

  private idle(): boolean {
    return (
      this.current === undefined && this.ready.length === 0 && this.flushing === undefined && this.purging === undefined &&
      this.unsettled === undefined
    );
  }

  /**
   * Where each value of our rows sits in a relation's columns: the source columns in order, then
   * _change_type, then _seq (-1: absent). Per relation OID, rebuilt when the relation is re-sent.
   */
  private columnPositions = new Map<number, Int32Array>();

  private positionsOf(relation: Pgoutput.MessageRelation, names: readonly string[]): Int32Array {
    let positions = this.columnPositions.get(relation.relationOid);
    if (!positions) {
      const index = new Map(relation.columns.map((c, i) => [c.name, i]));
      positions = Int32Array.from([...names, '_change_type', '_seq'], (name) => index.get(name) ?? -1);
      this.columnPositions.set(relation.relationOid, positions);
    }
    return positions;
  }

  private onMessage(message: RowPgoutputMessage, info: TableInfo, names: readonly string[], width: number): void {
    switch (message.tag) {
      case 'begin': {
        if (!message.commitLsn) throw new Error('begin message without a commit LSN');
        const commitLsn = parseLsn(message.commitLsn);
        this.current = {
          commitLsn,
          commitTimestamp: { micros: message.commitTime as bigint },
          commitTimeMs: Number((message.commitTime as bigint) / 1000n),
          rows: [],
          seqs: [],
        };
        return;
      }
      case 'insert': {
        const txn = this.current;
        if (!txn) throw new Error('insert outside a transaction');
        if (message.relation.schema !== 'lakets_cdf' || message.relation.name !== info.shadowTable) return;
        const positions = this.positionsOf(message.relation, names);
        const values = message.values;
        const row: LakeValue[] = new Array(width + 3);
        for (let i = 0; i <= width; i++) {
          const at = positions[i] as number;
          row[i] = at < 0 ? null : (values[at] ?? null);
        }
        row[width + 1] = txn.commitLsn;
        row[width + 2] = txn.commitTimestamp;
        txn.rows.push(row);
        const seqAt = positions[width + 1] as number;
        const seq = seqAt < 0 ? null : values[seqAt];
        if (typeof seq === 'bigint') txn.seqs.push(seq);
        else if (typeof seq === 'string') txn.seqs.push(BigInt(seq));
        return;
      }
      case 'relation':
        this.columnPositions.delete(message.relationOid);
        return;
      case 'commit': {
        const txn = this.current;
        this.current = undefined;
        if (!txn) throw new Error('commit outside a transaction');
        const endLsn = message.commitEndLsn ? parseLsn(message.commitEndLsn) : txn.commitLsn + 1n;
        if (this.appliedVersion !== undefined && txn.commitLsn <= this.appliedVersion) {
          // Already in the lake (the slot re-sent it after a crash): only its purge may be missing.
          this.status.skippedTransactions += 1;
          this.skippedSeqs.push(...txn.seqs);
          if (this.idle()) this.ackFlush(endLsn);
          return;
        }
        if (txn.rows.length === 0) return;
        this.ready.push({ commitLsn: txn.commitLsn, endLsn, rows: txn.rows, seqs: txn.seqs, receivedAt: Date.now(), commitTimeMs: txn.commitTimeMs });
        this.readyRows += txn.rows.length;
        return;
      }
      default:
        return; // relation, type, origin, message, truncate: nothing to store
    }
  }

  private onKeepalive(ctl: pg.Client, walEnd: bigint, shouldRespond: boolean): void {
    if (this.idle()) {
      // Every transaction the server decoded before walEnd has been received, and all of it is durable.
      this.advanceCommitted(walEnd);
      this.ackFlush(walEnd);
      if (this.skippedSeqs.length > 0) {
        const seqs = this.skippedSeqs;
        this.skippedSeqs = [];
        this.flushing = this.purge(ctl, seqs).finally(() => {
          this.flushing = undefined;
        });
        this.flushing.catch((error: Error) => this.sessionFailed?.(error));
      }
      if (Date.now() - this.lastStateWrite >= this.opts.statusIntervalMs / 2 && this.status.state === 'STREAMING') {
        void this.recordState('STREAMING', {}).catch((error: Error) => this.sessionFailed?.(error));
      }
    } else if (shouldRespond) {
      this.ackFlush(this.durableFlush);
    }
  }

  private maybeFlush(ctl: pg.Client, writer: DeltaTableWriter, appId: string, force: boolean): void {
    if (this.flushing) {
      // Back-pressure: stop reading while a large backlog waits for the writer (resumed when it is done).
      if (this.readyRows >= 2 * this.opts.batchMaxRows) this.pause();
      return;
    }
    if (this.ready.length === 0) {
      this.drainTail = false;
      // Caught up (or settling was deferred long enough): purge and acknowledge what is in the lake.
      const unsettled = this.unsettled;
      if (unsettled && (force || !this.backlog || Date.now() - unsettled.since >= this.opts.batchMaxMs)) {
        this.flushing = this.settle(ctl).finally(() => {
          this.flushing = undefined;
          this.resume();
        });
        this.flushing.catch((error: Error) => this.sessionFailed?.(error));
      }
      return;
    }
    const oldest = this.ready[0] as PendingTxn;
    const newest = this.ready[this.ready.length - 1] as PendingTxn;
    const full = this.readyRows >= this.opts.batchMaxRows;
    // A fair batch waiting, the writer free, and either the sync is behind the source (what arrives
    // committed a while ago) or the flow has paused (the end of a burst): commit it now rather than
    // wait for batchMaxRows or batchMaxMs. Whatever arrives meanwhile makes the next, larger commit.
    const fairBatch = this.readyRows >= Math.max(1, Math.floor(this.opts.batchMaxRows / 5));
    const catchingUp = fairBatch && Date.now() - newest.commitTimeMs > CATCH_UP_LAG_MS;
    // After a burst (a commit forced by size or lag lately), its tail goes at the pause whatever its size.
    const inBurst = Date.now() - this.lastBurstCommit < this.opts.batchMaxMs;
    const paused = (fairBatch || inBurst) && Date.now() - newest.receivedAt > QUIET_MS;
    if (!force && !this.drainTail && !full && !catchingUp && !paused && Date.now() - oldest.receivedAt < this.opts.batchMaxMs) return;
    if (full || catchingUp) {
      this.backlog = true;
      this.lastBurstCommit = Date.now();
    }
    this.drainTail = false;
    this.flushing = this.flush(ctl, writer, appId).finally(() => {
      this.flushing = undefined;
      this.resume();
      // The tail of a drained backlog arrived while this commit ran: commit it right away.
      if (this.drainTail && !this.stopping) this.maybeFlush(ctl, writer, appId, true);
    });
    this.flushing.catch((error: Error) => this.sessionFailed?.(error));
  }

  private socket(): { pause?: () => void; resume?: () => void } | undefined {
    return (this.service as unknown as { _connection?: { stream?: { pause?: () => void; resume?: () => void } } } | undefined)
      ?._connection?.stream;
  }

  private pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.socket()?.pause?.();
  }

  private resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.socket()?.resume?.();
  }

  /** Writes every complete transaction waiting as one Delta commit, then purges, acknowledges, records. */
  private async flush(ctl: pg.Client, writer: DeltaTableWriter, appId: string): Promise<void> {
    const batch = this.ready;
    this.ready = [];
    this.readyRows = 0;
    if (batch.length === 0) return;
    const last = batch[batch.length - 1] as PendingTxn;
    const rows: LakeRow[] = [];
    const seqs: bigint[] = this.skippedSeqs;
    this.skippedSeqs = [];
    for (const txn of batch) {
      for (const row of txn.rows) rows.push(row);
      for (const seq of txn.seqs) seqs.push(seq);
    }
    const started = Date.now();
    // The shadow rows this commit holds: purged when it settles, and recorded in the commit for
    // purgeRecentCommits after a crash and a lost slot.
    const ranges = seqRanges(seqs).map(([lo, hi]): [string, string] => [lo.toString(), hi.toString()]);
    this.commitIndex = this.status.commits;
    let result;
    try {
      result = await writer.commit({
        rows,
        txn: { appId, version: last.commitLsn },
        info: {
          transactions: batch.length, firstLsn: formatLsn((batch[0] as PendingTxn).commitLsn), lastLsn: formatLsn(last.commitLsn),
          ...(ranges.length <= MAX_RECORDED_RANGES ? { shadowSeqRanges: ranges } : {}),
        },
      });
    } catch (error) {
      if (error instanceof DeltaCommitConflictError) this.writer = undefined; // reopen on the next session
      throw error;
    }
    this.status.commits += 1;
    this.appliedVersion = last.commitLsn;
    this.status.deltaVersion = result.version;
    this.status.rowsSynced = writer.numRecords;
    if (result.checkpointError) this.log?.warn({ err: result.checkpointError }, 'cdf_sync: checkpoint failed; the next one will cover it');
    this.log?.debug(
      { table: this.table, version: result.version, rows: result.rows, transactions: batch.length, ms: Date.now() - started },
      'cdf_sync commit',
    );
    await this.crash('commit-visible-before-ack');
    const unsettled = (this.unsettled ??= { ranges: [], rows: 0, endLsn: 0n, since: Date.now() });
    for (const range of ranges) unsettled.ranges.push(range);
    unsettled.rows += seqs.length;
    unsettled.endLsn = last.endLsn;
    // While catching up with more rows already waiting for the next commit, settle every
    // batchMaxRows rows; otherwise now.
    if (this.backlog && this.ready.length > 0 && unsettled.rows < this.opts.batchMaxRows) return;
    await this.settle(ctl);
  }

  /**
   * Purges the shadow rows of the unsettled commits, then acknowledges their transactions — in the
   * background, while the next commit is written; one settlement at a time, in commit order, so
   * that the shadow rows of a commit are gone before the slot may forget its transactions (ARCHITECTURE.md H1).
   */
  private async settle(ctl: pg.Client): Promise<void> {
    if (this.purging) await this.purging;
    const batch = this.unsettled;
    if (!batch) return;
    this.unsettled = undefined;
    const settled: Promise<void> = (async () => {
      if (batch.ranges.length > 0) await this.purgeRanges(ctl, batch.ranges);
      this.ackFlush(batch.endLsn);
      this.advanceCommitted(batch.endLsn);
      await this.crash('after-ack');
      await this.recordState('STREAMING', {});
      await this.logRestartPoint(ctl);
    })().finally(() => {
      if (this.purging === settled) this.purging = undefined;
    });
    this.purging = settled;
    settled.catch((error: Error) => this.sessionFailed?.(error));
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
