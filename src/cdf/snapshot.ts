// The sync's first commit on a new slot, and its recovery after a crash (docs/ARCHITECTURE.md §6).
//
// The slot is created by the sync itself together with an exported snapshot, and the first commit
// holds what the lake lacks as of that snapshot, with txn version = consistent point - 1; streaming
// continues from the consistent point. Two kinds:
// - from the shadow: the shadow rows visible in the snapshot (changes committed before the slot
//   existed, or after a slot was lost: the shadow keeps every change the lake does not have);
// - a rebuild, when the lake was lost while the source had been synced (its shadow was purged): the
//   source table's rows visible in the snapshot, one insert each — the current state of the resident
//   chunks. The shadow rows visible in it are already part of that state: they are purged, never
//   written. Chunks dropped before are marked as history the lake no longer holds.
// A marker in lakets.cdf_state.detail makes a crash in the middle of either redo it, or finish it.

import pg from 'pg';
import { formatMicrosUtc, parseLsn } from '../lake/lsn.ts';
import type { DeltaTableWriter, LakeRow } from '../lake/writer.ts';
import type { Logger } from '../logger.ts';
import { SESSION_OPTIONS, syncClient, TEXT_TYPES } from './connections.ts';
import type { CrashInjection } from './crash-injection.ts';
import { purgeRecentCommits, purgeShadowRanges, recordedRangesInfo, recordedShadowRanges, seqRangesAsText, type SeqRange } from './shadow-purge.ts';
import type { SourceTable } from './source-table.ts';
import { ignoreWithReason, type CdfSyncStatus } from './status.ts';
import type { SyncStateRow } from './sync-state.ts';

export interface SnapshotContext {
  url: string;
  control: pg.Client;
  source: SourceTable;
  writer: DeltaTableWriter;
  appId: string;
  status: CdfSyncStatus;
  state: SyncStateRow;
  crashes: CrashInjection;
  /** Rows per chunk read from the shadow. */
  chunkRows: number;
  log: Logger | undefined;
  advanceCommitted(lsn: bigint): void;
}

export type SnapshotKind = 'shadow' | 'rebuild';

/**
 * Creates the slot with an exported snapshot and writes, as one commit (txn version = consistent
 * point - 1), the shadow rows visible in it, or for a rebuild the source table's rows. Returns the
 * consistent point: everything committed before it is in the lake, and the slot streams what follows.
 */
export async function writeSnapshot(ctx: SnapshotContext, slotExists: boolean, kind: SnapshotKind = 'shadow'): Promise<bigint> {
  const { control, source, writer, status, state, log } = ctx;
  const table = source.table;
  status.state = 'SNAPSHOT';
  await state.beginSnapshot(control, kind === 'rebuild');
  let missingHistory: Record<string, unknown> | undefined;
  if (kind === 'rebuild') {
    missingHistory = await state.recordMissingHistory(control);
    log?.warn(
      { table, lake: writer.tableDir, missingHistory },
      'cdf_sync: the lake is empty although this source was synced before: rebuilding it from the rows in Postgres; ' +
        'the history of chunks dropped before now is missing from it (reported in lake.missingHistory, never refilled)',
    );
  }
  if (slotExists) await control.query('SELECT pg_drop_replication_slot($1)', [source.slot]);
  if (writer.version >= 0) await purgeRecentCommits(control, table, writer, log);

  const repl = syncClient(ctx.url, 'lakets-cdf-snapshot-slot', log, undefined, { replication: 'database' } as Partial<pg.ClientConfig>);
  await repl.connect();
  const snapClient = new pg.Client({ connectionString: ctx.url, application_name: 'lakets-cdf-snapshot', options: SESSION_OPTIONS });
  snapClient.on('error', ignoreWithReason(log, 'snapshot connection lost; its next query fails the snapshot'));
  try {
    const created = await repl.query<{ consistent_point: string; snapshot_name: string }>(
      `CREATE_REPLICATION_SLOT ${pg.escapeIdentifier(source.slot)} LOGICAL pgoutput (SNAPSHOT 'export')`,
    );
    const cpText = created.rows[0]?.consistent_point;
    const snapshotName = created.rows[0]?.snapshot_name;
    if (!cpText || !snapshotName) throw new Error('CREATE_REPLICATION_SLOT returned no snapshot');
    const cp = parseLsn(cpText);
    await state.recordSnapshotPoint(control, cpText);

    await snapClient.connect();
    await snapClient.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    await snapClient.query(`SET TRANSACTION SNAPSHOT ${pg.escapeLiteral(snapshotName)}`);
    const cols = source.columns.map((c) => pg.escapeIdentifier(c.name)).join(', ');
    const shadow = `lakets_cdf.${pg.escapeIdentifier(source.shadowTable)}`;
    const seqs: bigint[] = [];
    let shadowRanges: SeqRange[] = [];
    if (kind === 'rebuild') {
      // The shadow's events in the snapshot are in the table's rows already: their ranges, to purge.
      const { rows } = await snapClient.query<{ lo: string; hi: string }>(
        `SELECT min(_seq)::text AS lo, max(_seq)::text AS hi
           FROM (SELECT _seq, _seq - row_number() OVER (ORDER BY _seq) AS island FROM ${shadow}) AS s
          GROUP BY island ORDER BY 1`,
      );
      shadowRanges = rows.map((r) => [r.lo, r.hi] as const);
      await snapClient.query(
        `DECLARE lakets_snapshot NO SCROLL CURSOR FOR
           SELECT ${cols}, 'insert'::text AS _change_type, NULL::bigint AS _seq FROM ${pg.escapeIdentifier(source.schema)}.${pg.escapeIdentifier(table)}`,
      );
    } else {
      await snapClient.query(`DECLARE lakets_snapshot NO SCROLL CURSOR FOR SELECT ${cols}, _change_type, _seq FROM ${shadow}`);
    }
    const version = cp - 1n;
    const lsnText = version.toString();
    const at = formatMicrosUtc(BigInt(Date.now()) * 1000n);
    const width = source.columns.length;
    const chunkRows = ctx.chunkRows;
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
          if (r[width + 1] !== null) seqs.push(BigInt(r[width + 1] as string));
          rows.push([...r.slice(0, width + 1), lsnText, at]);
        }
        yield rows;
      }
    };
    ctx.crashes.beginCommit(status.commits);
    const result = await writer.commit({
      chunks: chunks(),
      txn: { appId: ctx.appId, version },
      ...(kind === 'rebuild' ? { operation: 'WRITE' } : {}),
      // The shadow rows this snapshot holds (or, for a rebuild, covers), so that a restart can purge
      // them if this process dies before it does (see finishSnapshotAfterCrash).
      info: () => {
        shadowRanges = kind === 'rebuild' ? shadowRanges : seqRangesAsText(seqs);
        return {
          snapshot: { consistentPoint: cpText, ...(kind === 'rebuild' ? { rebuild: true, missingHistory } : {}) },
          ...recordedRangesInfo(shadowRanges),
        };
      },
    });
    await snapClient.query('COMMIT');
    status.commits += 1;
    status.deltaVersion = result.version;
    status.rowsSynced = writer.numRecords;
    log?.info({ table, kind, rows: result.rows, version: result.version, consistentPoint: cpText }, 'cdf_sync snapshot written');
    await ctx.crashes.at('commit-visible-before-ack');
    await purgeShadowRanges(control, table, shadowRanges);
    // Everything committed before the consistent point is now in the lake.
    ctx.advanceCommitted(cp);
    await state.clearSnapshotMarker(control);
    await ctx.crashes.at('after-ack');
    return cp;
  } finally {
    await snapClient.end().catch(ignoreWithReason(log, 'closing the snapshot connection failed; it is gone either way'));
    await repl.end().catch(ignoreWithReason(log, 'closing the slot-creating connection failed; it is gone either way'));
  }
}

/**
 * The snapshot commit is in the lake but the sync died before it purged the shadow rows and cleared
 * the marker: purge them now from the ranges recorded in that commit (the latest one: streaming
 * starts only after the marker is cleared), then clear the marker.
 */
export async function finishSnapshotAfterCrash(ctx: Pick<SnapshotContext, 'control' | 'source' | 'writer' | 'state' | 'log'>): Promise<void> {
  const ranges = await recordedShadowRanges(ctx.writer, ctx.writer.version);
  if (ranges && ranges.length > 0) {
    await purgeShadowRanges(ctx.control, ctx.source.table, ranges);
  } else {
    ctx.log?.warn({ table: ctx.source.table }, 'cdf_sync: the interrupted snapshot recorded no shadow ranges; its shadow rows stay');
  }
  await ctx.state.clearSnapshotMarker(ctx.control);
}
