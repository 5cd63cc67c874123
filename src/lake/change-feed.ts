// The current state of a change-feed lake table (docs/ARCHITECTURE.md §6). Our lake tables are append-only change
// feeds: every row is one change event holding the source table's columns plus `_change_type`, `_lsn` and
// `_commit_timestamp`. The current state is the multiset
//     (insert + update_postimage rows)  minus  (delete + update_preimage rows)
// matched on the full row of table columns. Each event counts +1 or -1 for its row; rows whose net count
// is positive are kept, repeated net times (two identical live rows stay two rows).
//
// Why match full rows rather than "the latest event per key": events of one transaction share an `_lsn`
// and carry no order among themselves, so "latest" is undefined for an insert and an update of the same
// row in one transaction. A full-row count needs no order and is exact. It also makes filtering the
// events first (a time range, `_lsn <= x` for the state as of an LSN) give the same answer as filtering
// the state afterwards, since a pre-image and its post-image are separate rows that cancel on their own.

import { queryRows } from './duckdb.ts';
import type { PlainRow } from './duckdb-values.ts';
import { withLocalFiles } from './local-snapshot.ts';
import { liveRowsSql } from './reader.ts';
import type { DeltaSnapshot } from './snapshot.ts';
import { quoteIdentifier, quoteLiteral } from './sql.ts';

export const CHANGE_TYPE_COLUMN = '_change_type';
export const CHANGE_FEED_META_COLUMNS: readonly string[] = [CHANGE_TYPE_COLUMN, '_lsn', '_commit_timestamp'];
export type ChangeType = 'insert' | 'delete' | 'update_preimage' | 'update_postimage';

export interface CurrentStateOptions {
  /** The table's own columns; default: every schema column except the change-feed meta columns. */
  readonly tableColumns?: readonly string[];
  /**
   * The table's key. Matching stays on the full row; the key adds a guard: if the current state holds
   * two rows for one key (a duplicated or lost event in the lake), the query fails with a DuckDB error
   * naming the key instead of returning a state that cannot be right. Fail closed: the tiering gate
   * counts rows with this.
   */
  readonly keyColumns?: readonly string[];
  /** A DuckDB predicate applied to the change events before matching (trusted SQL text). */
  readonly where?: string;
}

export interface ReadCurrentStateOptions extends CurrentStateOptions {
  /** A DuckDB ORDER BY list for the result (trusted SQL text). */
  readonly orderBy?: string;
}

/** SQL of the current state of a change-feed Delta table, over exactly its live files (local ones: see withLocalFiles). */
export function changeFeedCurrentStateSql(snapshot: DeltaSnapshot, options: CurrentStateOptions = {}): string {
  const schemaColumns = snapshot.metaData.schema.fields.map((field) => field.name);
  if (!schemaColumns.includes(CHANGE_TYPE_COLUMN)) {
    throw new Error(`table ${snapshot.tableDir} is not a change feed: it has no ${CHANGE_TYPE_COLUMN} column`);
  }
  const tableColumns = options.tableColumns ?? schemaColumns.filter((name) => !CHANGE_FEED_META_COLUMNS.includes(name));
  return currentStateSqlFromChanges(liveRowsSql(snapshot), tableColumns, options);
}

/** Reads the current state as plain JS row objects, table columns only. */
export async function readChangeFeedCurrentState(
  snapshot: DeltaSnapshot,
  options: ReadCurrentStateOptions = {},
): Promise<PlainRow[]> {
  return withLocalFiles(snapshot, (local) => {
    let sql = `SELECT * FROM (${changeFeedCurrentStateSql(local, options)}) AS current_state`;
    if (options.orderBy !== undefined) sql += `\nORDER BY ${options.orderBy}`;
    return queryRows(sql);
  });
}

/**
 * The same computation over any SQL that yields change events (`changesSql` must have the table columns
 * and `_change_type`). An unknown `_change_type` fails the query rather than being skipped.
 */
export function currentStateSqlFromChanges(
  changesSql: string,
  tableColumns: readonly string[],
  options: Omit<CurrentStateOptions, 'tableColumns'> = {},
): string {
  if (tableColumns.length === 0) throw new Error('a change feed needs at least one table column');
  const keyColumns = options.keyColumns ?? [];
  for (const key of keyColumns) {
    if (!tableColumns.includes(key)) throw new Error(`key column '${key}' is not one of the table columns`);
  }
  const columns = tableColumns.map(quoteIdentifier).join(', ');
  const changeType = quoteIdentifier(CHANGE_TYPE_COLUMN);
  const sign = `CASE ${changeType}
      WHEN 'insert' THEN 1 WHEN 'update_postimage' THEN 1
      WHEN 'delete' THEN -1 WHEN 'update_preimage' THEN -1
      ELSE error(${quoteLiteral('unknown _change_type in change feed: ')} || coalesce(${changeType}, 'NULL'))
    END`;

  const netCounts = `SELECT ${columns}, CAST(sum(${sign}) AS BIGINT) AS __lakets_net
    FROM (${changesSql}) AS change_events
    ${options.where === undefined ? '' : `WHERE ${options.where}`}
    GROUP BY ${columns}
    HAVING sum(${sign}) > 0`;
  // unnest(range(n)) repeats each surviving row n times.
  const expanded = `SELECT ${columns} FROM (SELECT ${columns}, unnest(range(__lakets_net)) AS __lakets_copy FROM (${netCounts}) AS net_counts) AS live_rows`;
  if (keyColumns.length === 0) return expanded;

  const keys = keyColumns.map(quoteIdentifier).join(', ');
  const keyText = keyColumns.map((key) => `coalesce(CAST(${quoteIdentifier(key)} AS VARCHAR), 'NULL')`).join(` || ', ' || `);
  // The guard column is filtered on, so the optimizer cannot drop it and skip the check.
  return `SELECT ${columns} FROM (
    SELECT ${columns},
      CASE WHEN count(*) OVER (PARTITION BY ${keys}) > 1
        THEN error(${quoteLiteral('change feed current state has more than one row for key ')} || ${keyText})
      END AS __lakets_duplicate_key
    FROM (${expanded}) AS keyed_rows
  ) AS checked_rows WHERE __lakets_duplicate_key IS NULL`;
}
