import type pg from 'pg';
import { changeFeedColumns, type SourceColumn } from '../lake/change-feed-table.ts';
import { CdfSyncFatalError } from './status.ts';

/** A table whose changes are synced: where its shadow, publication and slot are, and its columns. */
export interface SourceTable {
  table: string;
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

/**
 * Reads the sync's registration of `table` (lakets.cdf_tables, made by lakets.enable_sync) and the
 * table's columns. A missing change feed or a column type the lake cannot hold is a configuration
 * error (CdfSyncFatalError): retrying would not help.
 */
export async function describeSourceTable(client: pg.ClientBase, table: string): Promise<SourceTable> {
  const { rows } = await client
    .query<{ table_schema: string; shadow_table: string; publication_name: string; slot_name: string; db: string; sysid: string }>(
      `SELECT t.table_schema, t.shadow_table, t.publication_name, t.slot_name, current_database() AS db,
              (SELECT system_identifier::text FROM pg_control_system()) AS sysid
         FROM lakets.cdf_tables t WHERE t.table_name = $1`,
      [table],
    )
    .catch((error: Error) => {
      if (/lakets\.cdf_tables/.test(error.message)) {
        throw new CdfSyncFatalError(`the change feed is not installed in this database (${error.message}): run the migrations`);
      }
      throw error;
    });
  const row = rows[0];
  if (!row) {
    throw new CdfSyncFatalError(`sync is not enabled for ${table}: run SELECT lakets.enable_sync('${table}')`);
  }
  const { rows: columns } = await client.query<{ name: string; type: string }>(
    `SELECT a.attname AS name, format_type(a.atttypid, NULL) AS type
       FROM pg_attribute a
      WHERE a.attrelid = format('%I.%I', $1::text, $2::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [row.table_schema, table],
  );
  // The lake is partitioned by the day of the ChronoTable's time column; a plain table (no
  // ChronoTable, or the catalogue not installed) by its first timestamptz column.
  const { rows: chrono } = await client
    .query<{ time_column: string }>(`SELECT time_column FROM lakets.chronotables WHERE table_name = $1`, [table])
    .catch((): { rows: { time_column: string }[] } => ({ rows: [] }));
  const timeColumn = chrono[0]?.time_column ?? columns.find((c) => c.type === 'timestamp with time zone')?.name;
  const { rows: version } = await client.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`);
  if (!timeColumn) throw new CdfSyncFatalError(`${table} has no timestamptz column to partition the lake by day`);
  const sourceColumns = columns.map((c) => ({ name: c.name, pgType: c.type }));
  try {
    changeFeedColumns(sourceColumns);
  } catch (error) {
    throw new CdfSyncFatalError((error as Error).message);
  }
  return {
    table,
    schema: row.table_schema,
    shadowTable: row.shadow_table,
    publication: row.publication_name,
    slot: row.slot_name,
    database: row.db,
    systemIdentifier: row.sysid,
    columns: sourceColumns,
    timeColumn,
    binaryValues: Number(version[0]?.v ?? 0) >= 140_000,
  };
}
