// One sync session: one control connection's lifetime. It checks the server, takes the table's
// sync lock, opens the lake table, reads what the lake holds, decides whether a snapshot is needed
// (a new slot, or an interrupted snapshot), then streams until an error or a stop.

import type pg from 'pg';
import { changeFeedAppId, changeFeedColumns, changeFeedPartition, sourceBinding } from '../lake/change-feed-table.ts';
import { parseLsn } from '../lake/lsn.ts';
import { PutIfAbsentNotEnforcedError, assertPutIfAbsent } from '../lake/store/put-if-absent-probe.ts';
import type { LakeTable } from '../lake/table.ts';
import { DeltaCommitConflictError, DeltaTableMismatchError } from '../lake/writer-errors.ts';
import { DeltaTableWriter, type WriterStage } from '../lake/writer.ts';
import type { Logger } from '../logger.ts';
import type { BatchingPolicy } from './batching-policy.ts';
import { syncClient } from './connections.ts';
import type { CrashInjection } from './crash-injection.ts';
import type { RestartPoints } from './restart-points.ts';
import { finishSnapshotAfterCrash, writeSnapshot } from './snapshot.ts';
import { describeSourceTable, type SourceTable } from './source-table.ts';
import { CdfSyncFatalError, concurrentWriterError, ignoreWithReason, type CdfState, type CdfSyncStatus } from './status.ts';
import { StreamingPhase } from './streaming.ts';
import type { SyncStateRow } from './sync-state.ts';

/** The lake as the sync holds it across sessions. */
export interface LakeSession {
  /** The Delta table the changes go to, on its store. */
  table: LakeTable;
  /** The writer, kept open across sessions (reopened after a conflict). */
  writer?: DeltaTableWriter;
  /** The store refused a second create of one object (the put-if-absent probe passed). */
  putIfAbsentProven?: boolean;
}

/** What a session works with, owned by the sync across sessions. */
export interface SessionContext {
  url: string;
  table: string;
  /** How long checkpoints remember removed files. */
  retentionMs: number;
  checkpointInterval: number;
  snapshotChunkRows: number;
  statusIntervalMs: number;
  status: CdfSyncStatus;
  state: SyncStateRow;
  policy: BatchingPolicy;
  crashes: CrashInjection;
  restartPoints: RestartPoints;
  log: Logger | undefined;
  lake: LakeSession;
  isStopping(): boolean;
  advanceCommitted(lsn: bigint): void;
  /** The stream is up: start() resolves. */
  streaming(): void;
}

export class SyncSession {
  readonly control: pg.Client;
  private streamingPhase: StreamingPhase | undefined;

  constructor(private readonly ctx: SessionContext) {
    // Only a streaming session ends on a lost control connection; before that its next query fails.
    this.control = syncClient(ctx.url, 'lakets-cdf-sync', ctx.log, (error) => this.streamingPhase?.fail(error));
  }

  /** Ends the session (a stop): the streaming phase writes what is complete first. */
  interrupt(error: Error): void {
    this.streamingPhase?.fail(error);
  }

  async recordState(state: CdfState, detail: Record<string, unknown>): Promise<void> {
    await this.ctx.state.record(this.control, state, detail);
  }

  async run(): Promise<void> {
    const { ctx, control } = this;
    await control.connect();

    const { rows: levels } = await control.query<{ wal_level: string }>('SHOW wal_level');
    const walLevel = levels[0]?.wal_level;
    if (walLevel !== 'logical') {
      throw new CdfSyncFatalError(
        `wal_level is '${walLevel}', the change-feed sync needs wal_level = logical: set it in postgresql.conf ` +
          `(or the provider's parameter group) and restart Postgres. Tiering stays closed until the sync streams.`,
        'UNAVAILABLE',
      );
    }
    // One sync per table: a second instance waits instead of fighting over the slot and cdf_state.
    const { rows: locked } = await control.query<{ ok: boolean }>(
      `SELECT pg_try_advisory_lock(hashtext('lakets.cdf_sync'), hashtext($1)) AS ok`,
      [ctx.table],
    );
    if (!locked[0]?.ok) throw new Error(`another cdf_sync process holds table ${ctx.table}`);

    const source = await describeSourceTable(control, ctx.table);
    await this.recordState('STARTING', {});
    await this.provePutIfAbsent();
    // A writer kept from the last session must still see its table: the lake may have been emptied
    // or replaced meanwhile, and its next commit would then start a log at a version past zero.
    if (ctx.lake.writer && !(await ctx.lake.writer.tableStillThere())) ctx.lake.writer = undefined;
    const writer = (ctx.lake.writer ??= await this.openWriter(source));
    const appId = changeFeedAppId(`${source.schema}.${ctx.table}`);
    // The lake is the truth: read its txn version before anything is received.
    let appliedVersion = writer.txnVersion(appId);
    ctx.status.deltaVersion = writer.version;
    ctx.status.rowsSynced = writer.numRecords;

    const marker = await ctx.state.snapshotMarker(control);
    const { rows: slots } = await control.query<{ database: string; active: boolean; confirmed_flush_lsn: string | null }>(
      'SELECT database, active, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1',
      [source.slot],
    );
    const slot = slots[0];
    if (slot && slot.database !== source.database) {
      throw new CdfSyncFatalError(`replication slot ${source.slot} belongs to database ${slot.database}, not ${source.database}`);
    }
    if (slot?.active) throw new Error(`replication slot ${source.slot} is in use by another process`);

    let needSnapshot = !slot || appliedVersion === undefined;
    // An empty lake for a source that was synced before: its shadow was purged, so the shadow alone
    // would refill it silently with a fraction of the rows. It is rebuilt from the table instead.
    const rebuild = writer.version < 0 && (marker?.rebuild === true || (await this.syncedBefore(control, slot !== undefined && !marker)));
    if (!marker && writer.version >= 0) await this.refuseOlderCopy(control, writer);
    const snapshotContext = { ...ctx, control, source, writer, appId, chunkRows: ctx.snapshotChunkRows };
    if (marker) {
      const cp = marker.consistentPoint ? parseLsn(marker.consistentPoint) : undefined;
      if (cp === undefined || appliedVersion === undefined || appliedVersion < cp - 1n) needSnapshot = true;
      else await finishSnapshotAfterCrash(snapshotContext);
    }
    // Status messages never report less than the slot already confirmed.
    let durableFlush = !needSnapshot && slot?.confirmed_flush_lsn ? parseLsn(slot.confirmed_flush_lsn) : 0n;
    if (needSnapshot) {
      try {
        durableFlush = await writeSnapshot(snapshotContext, slot !== undefined, rebuild ? 'rebuild' : 'shadow');
      } catch (error) {
        if (!(error instanceof DeltaCommitConflictError)) throw error;
        ctx.lake.writer = undefined;
        throw concurrentWriterError(error);
      }
      appliedVersion = durableFlush - 1n;
    }
    this.streamingPhase = new StreamingPhase(
      {
        ...ctx,
        control,
        source,
        writer,
        appId,
        writerConflict: () => (ctx.lake.writer = undefined),
      },
      appliedVersion,
      durableFlush,
    );
    await this.streamingPhase.run();
  }

  /**
   * Whether this source's lake existed before: the sync recorded a commit, a finished snapshot left
   * its slot, or chunks were tiered (only a lake that held them lets a chunk pass the gate).
   */
  private async syncedBefore(control: pg.Client, slotOfFinishedSnapshot: boolean): Promise<boolean> {
    if (slotOfFinishedSnapshot || (await this.ctx.state.everCommitted(control))) return true;
    const { rows } = await control.query<{ tiered: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM lakets.chunks WHERE table_name = $1 AND status <> 'active') AS tiered`,
      [this.ctx.table],
    );
    return rows[0]?.tiered ?? false;
  }

  /**
   * A lake older than the version this sync last recorded is a copy from before (a restored backup,
   * another location): the changes committed since are not in it, and appending would hide the gap.
   */
  private async refuseOlderCopy(control: pg.Client, writer: DeltaTableWriter): Promise<void> {
    const { rows } = await control.query<{ v: string | null }>(`SELECT delta_version::text AS v FROM lakets.cdf_state WHERE table_name = $1`, [this.ctx.table]);
    const recorded = rows[0]?.v === null || rows[0]?.v === undefined ? undefined : Number(rows[0].v);
    if (recorded !== undefined && writer.version < recorded) {
      throw new CdfSyncFatalError(
        `the lake table ${writer.tableDir} is at version ${writer.version}, but this sync already committed version ${recorded}: ` +
          `it was replaced by an older copy, and the changes since are not in it. Move it away (the sync then rebuilds the lake ` +
          `from the rows in Postgres and reports the history it lacks) or restore the current copy.`,
      );
    }
  }

  /** After the session ended, however: waits for its writes, then closes its connections. */
  async close(): Promise<void> {
    await this.streamingPhase?.close();
    await this.control.end().catch(ignoreWithReason(this.ctx.log, 'closing the control connection failed; it is gone either way'));
  }

  /**
   * Delta commits are atomic only on a store that refuses a second create of one object: a store that
   * overwrites would let two writers both make a version, and one commit would silently vanish. The
   * probe runs once per process before the first commit; a store that fails it stops the sync for good
   * (UNAVAILABLE: tiering stays closed, nothing is dropped). An unreachable store is retried instead.
   */
  private async provePutIfAbsent(): Promise<void> {
    const { ctx } = this;
    if (ctx.lake.putIfAbsentProven) return;
    try {
      const verdict = await assertPutIfAbsent(ctx.lake.table.store);
      ctx.log?.info({ table: ctx.table, lake: ctx.lake.table.location }, verdict.detail);
    } catch (error) {
      if (error instanceof PutIfAbsentNotEnforcedError) {
        throw new CdfSyncFatalError(`${error.message}. The sync does not start: tiering stays closed and nothing is dropped.`, 'UNAVAILABLE');
      }
      throw error;
    }
    ctx.lake.putIfAbsentProven = true;
  }

  private async openWriter(source: SourceTable): Promise<DeltaTableWriter> {
    const { ctx } = this;
    try {
      return await DeltaTableWriter.openTable(ctx.lake.table, {
        columns: changeFeedColumns(source.columns),
        partition: changeFeedPartition(source.timeColumn),
        configuration: sourceBinding({
          systemIdentifier: source.systemIdentifier,
          database: source.database,
          slot: source.slot,
          table: `${source.schema}.${ctx.table}`,
        }),
        tableName: ctx.table,
        checkpointInterval: ctx.checkpointInterval,
        tombstoneRetentionMs: ctx.retentionMs,
        onStage: (stage: WriterStage) => {
          if (stage === 'parquet-written' || stage === 'commit-temp-written') void ctx.crashes.at(stage);
        },
      });
    } catch (error) {
      if (error instanceof DeltaTableMismatchError) throw new CdfSyncFatalError(error.message);
      throw error;
    }
  }
}
