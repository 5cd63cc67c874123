import type pg from 'pg';
import { formatLsn } from '../lake/lsn.ts';
import type { CdfState, CdfSyncStatus } from './status.ts';

/** The marker a snapshot leaves in lakets.cdf_state.detail until its shadow rows are purged. */
export interface SnapshotMarker {
  /** The new slot's consistent point; null while the slot is being created. */
  consistentPoint?: string | null;
  /** The snapshot rebuilds a lost lake from the resident chunks (not from the shadow). */
  rebuild?: boolean;
}

/**
 * The sync's row in lakets.cdf_state: its state, the committed LSN (never moved back), the Delta
 * version, the rows synced and when it was last written (the durability gate trusts STREAMING only
 * with a fresh updated_at), plus the snapshot marker that lets a restart tell a finished snapshot
 * from an interrupted one.
 */
export class SyncStateRow {
  /** When the row was last written by this process (ms). */
  lastWriteAt = 0;

  constructor(
    private readonly table: string,
    private readonly status: CdfSyncStatus,
  ) {}

  async record(client: pg.ClientBase, state: CdfState, detail: Record<string, unknown>): Promise<void> {
    this.lastWriteAt = Date.now();
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

  async snapshotMarker(client: pg.ClientBase): Promise<SnapshotMarker | undefined> {
    const { rows } = await client.query<{ detail: Record<string, unknown> }>('SELECT detail FROM lakets.cdf_state WHERE table_name = $1', [
      this.table,
    ]);
    return rows[0]?.detail?.['snapshot'] as SnapshotMarker | undefined;
  }

  /** A snapshot begins: state SNAPSHOT, marker without a consistent point yet. */
  async beginSnapshot(client: pg.ClientBase, rebuild: boolean): Promise<void> {
    await client.query(
      `UPDATE lakets.cdf_state SET state = 'SNAPSHOT', updated_at = clock_timestamp(),
              detail = detail || jsonb_build_object('snapshot', jsonb_build_object('consistentPoint', NULL, 'rebuild', $2::boolean))
        WHERE table_name = $1`,
      [this.table, rebuild],
    );
  }

  /**
   * The lake is being rebuilt: marks the chunks dropped so far as missing from it and records the
   * whole missing history (for `lake` and the log). Returns it.
   */
  async recordMissingHistory(client: pg.ClientBase): Promise<Record<string, unknown>> {
    const { rows } = await client.query<{ missing: Record<string, unknown> }>(
      `WITH missing AS (SELECT lakets.mark_lake_history_lost($1) || jsonb_build_object('rebuiltAt', clock_timestamp()) AS m)
       UPDATE lakets.cdf_state SET detail = detail || jsonb_build_object('missingHistory', (SELECT m FROM missing))
        WHERE table_name = $1 RETURNING detail->'missingHistory' AS missing`,
      [this.table],
    );
    return rows[0]?.missing ?? {};
  }

  /** Whether this table's sync ever recorded a Delta commit (its lake existed). */
  async everCommitted(client: pg.ClientBase): Promise<boolean> {
    const { rows } = await client.query<{ committed: boolean }>(
      `SELECT delta_version IS NOT NULL AS committed FROM lakets.cdf_state WHERE table_name = $1`,
      [this.table],
    );
    return rows[0]?.committed ?? false;
  }

  async recordSnapshotPoint(client: pg.ClientBase, consistentPoint: string): Promise<void> {
    await client.query(
      `UPDATE lakets.cdf_state SET detail = detail || jsonb_build_object('snapshot', jsonb_build_object('consistentPoint', $2::text))
        WHERE table_name = $1`,
      [this.table, consistentPoint],
    );
  }

  /** The snapshot's rows are in the lake and purged from the shadow. */
  async clearSnapshotMarker(client: pg.ClientBase): Promise<void> {
    await client.query(`UPDATE lakets.cdf_state SET detail = detail - 'snapshot' WHERE table_name = $1`, [this.table]);
  }
}
