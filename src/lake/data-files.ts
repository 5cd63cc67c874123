// Writes rows into day-partitioned Parquet data files with DuckDB, and describes each file as a Delta
// `add` action with statistics (numRecords, minValues, maxValues, nullCount).
//
// Values arrive as Postgres's text output (which keeps microseconds; never a JS Date) or already typed
// from Postgres's binary form (text-columns.ts: LakeValue). The rows go to DuckDB through its appender
// in data chunks (no text format in between, so NULL and the empty string stay distinct): numbers and
// timestamps as native vectors, everything else as VARCHAR cast by DuckDB in SQL.

import { randomUUID } from 'node:crypto';
import { DuckDBDataChunk, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { toPlainRow } from './duckdb-values.ts';
import type { LakeStore, StagedObject } from './store/lake-store.ts';
import { duckdbTypeOf, type DeltaPrimitiveTypeName } from './schema.ts';
import { quoteIdentifier, quoteLiteral } from './sql.ts';
import { columnLoader, type ColumnLoader, type LakeRow } from './text-columns.ts';

export interface DeltaColumn {
  readonly name: string;
  readonly type: DeltaPrimitiveTypeName;
}

/** A day partition column (`YYYY-MM-DD`, UTC, Delta type string) derived from a timestamp column. */
export interface DayPartition {
  readonly column: string;
  readonly fromTimestamp: string;
}

export type { LakeRow, LakeTimestamp, LakeValue } from './text-columns.ts';

/** An `add` action as written to the log (and to checkpoints). */
export interface AddAction {
  readonly path: string;
  readonly partitionValues: Readonly<Record<string, string | null>>;
  readonly size: number;
  readonly modificationTime: number;
  readonly dataChange: boolean;
  /** The stats JSON string (exact integers kept as digits). */
  readonly stats: string;
  /** Rows in the file (the stats' numRecords). */
  readonly numRecords: number;
}

/** A `remove` action (a tombstone): the file left the table at `deletionTimestamp` but stays in the store for readers of older versions. */
export interface RemoveAction {
  readonly path: string;
  readonly deletionTimestamp: number;
  readonly dataChange: boolean;
  readonly partitionValues: Readonly<Record<string, string | null>>;
  readonly size: number;
}

/** The `remove` action of a data file as one line of a commit or of a checkpoint's JSON. */
export function removeActionLine(remove: RemoveAction): string {
  return JSON.stringify({
    remove: {
      path: remove.path,
      deletionTimestamp: remove.deletionTimestamp,
      dataChange: remove.dataChange,
      extendedFileMetadata: true,
      partitionValues: remove.partitionValues,
      size: remove.size,
    },
  });
}

/** The `add` action of a data file as one line of a commit or of a checkpoint's JSON. */
export function addActionLine(add: AddAction): string {
  return JSON.stringify({
    add: {
      path: add.path,
      partitionValues: add.partitionValues,
      size: add.size,
      modificationTime: add.modificationTime,
      dataChange: add.dataChange,
      stats: add.stats,
    },
  });
}

/** Delta's name for a null partition value's folder (Hive convention). */
const NULL_PARTITION = '__HIVE_DEFAULT_PARTITION__';
/** Strings longer than this get no min/max (Delta truncates there; we simply leave them out). */
const MAX_STRING_STAT = 32;

/** Rows per appended data chunk: DuckDB's vector size, the most a chunk holds. */
const CHUNK_ROWS = 2048;

/**
 * Writes the rows into one Parquet file per partition value and makes each durable in the table's
 * store (a local store fsyncs it and its folder; a remote one uploads what DuckDB wrote to a local temp
 * file), then returns the `add` actions. No commit names them yet: until one does they are invisible.
 */
export async function writeDataFiles(
  connection: DuckDBConnection,
  store: LakeStore,
  columns: readonly DeltaColumn[],
  partition: DayPartition,
  rows: readonly LakeRow[],
): Promise<AddAction[]> {
  if (rows.length === 0) return [];
  const batchId = randomUUID().replaceAll('-', '');
  const raw = `lakets_raw_${batchId}`;
  const typedView = `lakets_batch_${batchId}`;
  for (const row of rows) {
    if (row.length !== columns.length) throw new Error(`a row has ${row.length} values for ${columns.length} columns`);
  }
  try {
    // The values go in through the appender (no text format to escape or parse), natively typed where
    // text-columns.ts converts them exactly, else as VARCHAR that DuckDB casts like any other text.
    const loaders = columns.map((c, i) => columnLoader(c.type, rows, i));
    const rawTypes = columns.map((c, i) => (loaders[i]!.castInSql || loaders[i]!.convert === undefined ? 'VARCHAR' : duckdbTypeOf(c.type)));
    await connection.run(`CREATE TEMP TABLE ${raw} (${columns.map((c, i) => `${quoteIdentifier(c.name)} ${rawTypes[i]}`).join(', ')})`);
    await appendLakeRows(connection, raw, loaders, rows);
    // The typed rows: the appended table itself when every column went in natively, else a view
    // casting the VARCHAR ones (evaluated by the stats query and by each file's COPY).
    let source = raw;
    if (loaders.some((l) => l.castInSql)) {
      const casts = columns.map((c, i) =>
        loaders[i]!.castInSql ? `CAST(${quoteIdentifier(c.name)} AS ${duckdbTypeOf(c.type)}) AS ${quoteIdentifier(c.name)}` : quoteIdentifier(c.name),
      );
      await connection.run(`CREATE TEMP VIEW ${typedView} AS SELECT ${casts.join(', ')} FROM ${raw}`);
      source = typedView;
    }
    const day = dayKey(partition, columns);
    try {
      const stats = await partitionStats(connection, source, columns, day);
      const staged: { object: StagedObject; key: string; stats: PartitionStats }[] = [];
      try {
        for (const s of stats) {
          const dirName = `${partition.column}=${s.partitionValue ?? NULL_PARTITION}`;
          // Day values and the Hive null name need no escaping; anything else would need Hive and URI escaping.
          if (!/^[A-Za-z0-9_.=-]+$/.test(dirName)) throw new Error(`unexpected partition folder name ${JSON.stringify(dirName)}`);
          const key = `${dirName}/part-00000-${randomUUID()}.c000.zstd.parquet`;
          const object = await store.stage(key);
          staged.push({ object, key, stats: s });
          const where = s.key === null ? `${day.key} IS NULL` : `${day.key} = ${s.key}`;
          await connection.run(
            `COPY (SELECT ${columns.map((c) => quoteIdentifier(c.name)).join(', ')} FROM ${source} WHERE ${where})
               TO ${quoteLiteral(object.localPath)} (FORMAT parquet, COMPRESSION zstd)`,
          );
        }
        // Durable in the store before any commit refers to them (uploads run side by side).
        const published = await Promise.all(staged.map((entry) => entry.object.publish()));
        return staged.map((entry, i): AddAction => ({
          path: entry.key,
          partitionValues: { [partition.column]: entry.stats.partitionValue },
          size: published[i]!.size,
          modificationTime: published[i]!.lastModified.getTime(),
          dataChange: true,
          stats: entry.stats.statsJson,
          numRecords: entry.stats.numRecords,
        }));
      } finally {
        await Promise.all(staged.map((entry) => entry.object.discard().catch(() => undefined)));
      }
    } finally {
      await connection.run(`DROP VIEW IF EXISTS ${typedView}`);
    }
  } finally {
    await connection.run(`DROP TABLE IF EXISTS ${raw}`);
  }
}

/**
 * The Delta stats of the rows a SQL relation yields (trusted SQL text with the data columns), grouped
 * by the day partition of each row: what an `add` action records about a file holding them.
 */
export async function dayPartitionStats(
  connection: DuckDBConnection,
  relationSql: string,
  columns: readonly DeltaColumn[],
  partition: DayPartition,
): Promise<{ partitionValue: string | null; numRecords: number; statsJson: string }[]> {
  const stats = await partitionStats(connection, `(${relationSql}) AS stats_source`, columns, dayKey(partition, columns));
  return stats.map(({ partitionValue, numRecords, statsJson }) => ({ partitionValue, numRecords, statsJson }));
}

/** Appends the rows through the column loaders, one data chunk (≤ the DuckDB vector size) at a time. */
async function appendLakeRows(connection: DuckDBConnection, table: string, loaders: readonly ColumnLoader[], rows: readonly LakeRow[]): Promise<void> {
  const appender = await connection.createAppender(table);
  try {
    const types = loaders.map((l) => l.vectorType);
    for (let start = 0; start < rows.length; start += CHUNK_ROWS) {
      const count = Math.min(CHUNK_ROWS, rows.length - start);
      const chunk = DuckDBDataChunk.create(types, count);
      const column: DuckDBValue[] = new Array(count);
      for (let c = 0; c < loaders.length; c++) {
        const convert = loaders[c]!.convert;
        for (let r = 0; r < count; r++) {
          const value = (rows[start + r] as LakeRow)[c] ?? null;
          column[r] = value === null || convert === undefined ? (value as DuckDBValue) : convert(value);
        }
        chunk.setColumnValues(c, column);
      }
      appender.appendDataChunk(chunk);
    }
    appender.flushSync();
  } finally {
    appender.closeSync();
  }
}

/** A day partition as SQL: `key` groups the rows of one day, `label` (an aggregate) names it 'YYYY-MM-DD'. */
interface DayKey {
  readonly key: string;
  readonly label: string;
}

const MICROS_PER_DAY = 86_400_000_000;

/**
 * For a timestamp column, the day number by integer arithmetic on its epoch microseconds (floor
 * division, so days before 1970 too): formatting a date string per row cost more than the rest of
 * the stats query. Labels are formatted once per group, in the session's UTC.
 */
function dayKey(partition: DayPartition, columns: readonly DeltaColumn[]): DayKey {
  const ts = quoteIdentifier(partition.fromTimestamp);
  const type = columns.find((c) => c.name === partition.fromTimestamp)?.type;
  if (type === 'timestamp' || type === 'timestamp_ntz') {
    const e = `epoch_us(${ts})`;
    return {
      key: `(CASE WHEN ${e} < 0 THEN (${e} + 1) // ${MICROS_PER_DAY} - 1 ELSE ${e} // ${MICROS_PER_DAY} END)`,
      label: `strftime(min(${ts}), '%Y-%m-%d')`,
    };
  }
  const text = `strftime(${ts}, '%Y-%m-%d')`;
  return { key: text, label: `min(${text})` };
}

interface PartitionStats {
  /** The SQL literal of the group's key (null: the timestamp is null). */
  readonly key: string | null;
  readonly partitionValue: string | null;
  readonly numRecords: number;
  readonly statsJson: string;
}

/** JSON text of a stats value; bigints keep every digit. */
function jsonValue(value: unknown): string {
  return typeof value === 'bigint' ? value.toString() : JSON.stringify(value);
}

function jsonObject(entries: readonly (readonly [string, unknown])[]): string {
  return `{${entries.map(([key, value]) => `${JSON.stringify(key)}:${jsonValue(value)}`).join(',')}}`;
}

async function partitionStats(
  connection: DuckDBConnection,
  source: string,
  columns: readonly DeltaColumn[],
  day: DayKey,
): Promise<PartitionStats[]> {
  const selects: string[] = [`${day.key} AS k`, `${day.label} AS p`, 'count(*) AS n'];
  columns.forEach((c, i) => {
    const col = quoteIdentifier(c.name);
    selects.push(`count(*) - count(${col}) AS nulls_${i}`);
    if (c.type === 'timestamp' || c.type === 'timestamp_ntz') {
      const suffix = c.type === 'timestamp' ? 'Z' : '';
      selects.push(`strftime(min(${col}), '%Y-%m-%dT%H:%M:%S.%f${suffix}') AS min_${i}`);
      selects.push(`strftime(max(${col}), '%Y-%m-%dT%H:%M:%S.%f${suffix}') AS max_${i}`);
    } else if (c.type === 'string') {
      selects.push(`CASE WHEN max(length(${col})) <= ${MAX_STRING_STAT} THEN min(${col}) END AS min_${i}`);
      selects.push(`CASE WHEN max(length(${col})) <= ${MAX_STRING_STAT} THEN max(${col}) END AS max_${i}`);
    } else if (c.type === 'date') {
      selects.push(`CAST(min(${col}) AS VARCHAR) AS min_${i}`, `CAST(max(${col}) AS VARCHAR) AS max_${i}`);
    } else if (c.type === 'boolean' || c.type === 'binary') {
      selects.push(`NULL AS min_${i}`, `NULL AS max_${i}`);
    } else {
      selects.push(`min(${col}) AS min_${i}`, `max(${col}) AS max_${i}`);
    }
  });
  const reader = await connection.runAndReadAll(`SELECT ${selects.join(', ')} FROM ${source} GROUP BY 1 ORDER BY 1`);
  return reader.getRowObjects().map((raw) => {
    const row = toPlainRow(raw);
    const numRecords = Number(row['n']);
    const mins: [string, unknown][] = [];
    const maxs: [string, unknown][] = [];
    const nulls: [string, unknown][] = [];
    columns.forEach((c, i) => {
      nulls.push([c.name, row[`nulls_${i}`]]);
      const min = row[`min_${i}`];
      const max = row[`max_${i}`];
      const usable = (v: unknown) => v !== null && v !== undefined && (typeof v !== 'number' || Number.isFinite(v));
      if (usable(min) && usable(max)) {
        mins.push([c.name, min]);
        maxs.push([c.name, max]);
      }
    });
    const statsJson =
      `{"numRecords":${numRecords},"minValues":${jsonObject(mins)},"maxValues":${jsonObject(maxs)},` +
      `"nullCount":${jsonObject(nulls)}}`;
    const p = row['p'];
    const k = row['k'];
    const key = k === null || k === undefined ? null : typeof k === 'string' ? quoteLiteral(k) : String(k);
    return { key, partitionValue: typeof p === 'string' ? p : null, numRecords, statsJson };
  });
}
