import type pg from 'pg';
import type { Config } from '../config.ts';
import { CHANGE_FEED_PARTITION_COLUMN } from '../lake/change-feed-table.ts';
import type { DayPartition } from '../lake/data-files.ts';
import { lakeTableExists } from '../lake/log-listing.ts';
import { sharedLakeTable } from '../lake/shared-tables.ts';
import type { LakeTable } from '../lake/table.ts';

/** A synced table's lake table, as the lake maintenance jobs work on it. */
export interface SyncedLakeTable {
  name: string;
  table: LakeTable;
  /** The day partition of its change feed (the UTC day of the ChronoTable's time column). */
  partition: DayPartition;
}

/**
 * The lake tables of every table the change feed syncs (lakets.cdf_tables) that exist in the lake
 * yet, on the process's shared store client; the others are listed in `missing`.
 */
export async function syncedLakeTables(client: pg.ClientBase, config: Config): Promise<{ tables: SyncedLakeTable[]; missing: string[] }> {
  const { rows } = await client.query<{ table_name: string; time_column: string | null }>(
    `SELECT s.table_name, c.time_column FROM lakets.cdf_tables s LEFT JOIN lakets.chronotables c USING (table_name) ORDER BY 1`,
  );
  const tables: SyncedLakeTable[] = [];
  const missing: string[] = [];
  for (const row of rows) {
    const table = sharedLakeTable(config.lake.store, row.table_name);
    if (row.time_column === null || !(await lakeTableExists(table))) {
      missing.push(row.table_name);
      continue;
    }
    tables.push({ name: row.table_name, table, partition: { column: CHANGE_FEED_PARTITION_COLUMN, fromTimestamp: row.time_column } });
  }
  return { tables, missing };
}
