// Writes rows given as text into day-partitioned Parquet data files with DuckDB, and describes each
// file as a Delta `add` action with statistics (numRecords, minValues, maxValues, nullCount).
//
// Values arrive as text (Postgres's text output, which keeps microseconds; never a JS Date) and are
// cast by DuckDB to each column's type. The rows go to DuckDB through its appender in data chunks (no
// text format in between, so NULL and the empty string stay distinct): numbers and UTC timestamps
// converted to native vectors on the way (text-columns.ts), everything else as VARCHAR cast in SQL.

import { randomUUID } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { DuckDBDataChunk, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { fsyncDir, fsyncFile } from './durable-files.ts';
import { toPlainRow } from './duckdb-values.ts';
import { duckdbTypeOf, type DeltaPrimitiveTypeName } from './schema.ts';
import { quoteIdentifier, quoteLiteral } from './sql.ts';
import { columnLoader, type ColumnLoader } from './text-columns.ts';

export interface DeltaColumn {
  readonly name: string;
  readonly type: DeltaPrimitiveTypeName;
}

/** A day partition column (`YYYY-MM-DD`, UTC, Delta type string) derived from a timestamp column. */
export interface DayPartition {
  readonly column: string;
  readonly fromTimestamp: string;
}

/** One row: the text form of each column's value, in column order; null is SQL NULL. */
export type TextRow = readonly (string | null)[];

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
 * Writes the rows into one Parquet file per partition value under `tableDir`, fsyncs each file and
 * the folders that got new names, and returns the `add` actions. Nothing is published here.
 */
export async function writeDataFiles(
  connection: DuckDBConnection,
  tableDir: string,
  columns: readonly DeltaColumn[],
  partition: DayPartition,
  rows: readonly TextRow[],
): Promise<AddAction[]> {
  if (rows.length === 0) return [];
  const batchId = randomUUID().replaceAll('-', '');
  const raw = `lakets_raw_${batchId}`;
  const temp = `lakets_batch_${batchId}`;
  for (const row of rows) {
    if (row.length !== columns.length) throw new Error(`a row has ${row.length} values for ${columns.length} columns`);
  }
  try {
    // The values go in through the appender (no text format to escape or parse), natively typed where
    // text-columns.ts converts them exactly, else as VARCHAR that DuckDB casts like any other text.
    const loaders = columns.map((c, i) => columnLoader(c.type, rows, i));
    const rawTypes = columns.map((c, i) => (loaders[i]!.castInSql || loaders[i]!.convert === undefined ? 'VARCHAR' : duckdbTypeOf(c.type)));
    await connection.run(`CREATE TEMP TABLE ${raw} (${columns.map((c, i) => `${quoteIdentifier(c.name)} ${rawTypes[i]}`).join(', ')})`);
    await appendTextRows(connection, raw, loaders, rows);
    const casts = columns.map((c, i) =>
      loaders[i]!.castInSql ? `CAST(${quoteIdentifier(c.name)} AS ${duckdbTypeOf(c.type)}) AS ${quoteIdentifier(c.name)}` : quoteIdentifier(c.name),
    );
    const fromTs = quoteIdentifier(partition.fromTimestamp);
    await connection.run(
      `CREATE TEMP TABLE ${temp} AS
       SELECT *, strftime(${fromTs}, '%Y-%m-%d') AS ${quoteIdentifier(partition.column)} FROM (
         SELECT ${casts.join(', ')} FROM ${raw}
       ) AS typed`,
    );
    await connection.run(`DROP TABLE ${raw}`);
    try {
      const stats = await partitionStats(connection, temp, columns, partition.column);
      const adds: AddAction[] = [];
      const newDirs = new Set<string>();
      for (const s of stats) {
        const dirName = `${partition.column}=${s.partitionValue ?? NULL_PARTITION}`;
        // Day values and the Hive null name need no escaping; anything else would need Hive and URI escaping.
        if (!/^[A-Za-z0-9_.=-]+$/.test(dirName)) throw new Error(`unexpected partition folder name ${JSON.stringify(dirName)}`);
        const dir = path.join(tableDir, dirName);
        const existed = await stat(dir).then(() => true, () => false);
        if (!existed) {
          await mkdir(dir, { recursive: true });
          newDirs.add(tableDir);
        }
        const fileName = `part-00000-${randomUUID()}.c000.zstd.parquet`;
        const filePath = path.join(dir, fileName);
        const where =
          s.partitionValue === null
            ? `${quoteIdentifier(partition.column)} IS NULL`
            : `${quoteIdentifier(partition.column)} = ${quoteLiteral(s.partitionValue)}`;
        await connection.run(
          `COPY (SELECT ${columns.map((c) => quoteIdentifier(c.name)).join(', ')} FROM ${temp} WHERE ${where})
             TO ${quoteLiteral(filePath)} (FORMAT parquet, COMPRESSION zstd)`,
        );
        await fsyncFile(filePath);
        newDirs.add(dir);
        const info = await stat(filePath);
        adds.push({
          path: `${dirName}/${fileName}`,
          partitionValues: { [partition.column]: s.partitionValue },
          size: info.size,
          modificationTime: Math.floor(info.mtimeMs),
          dataChange: true,
          stats: s.statsJson,
          numRecords: s.numRecords,
        });
      }
      // The new names must be durable before a commit refers to them.
      for (const dir of newDirs) await fsyncDir(dir);
      return adds;
    } finally {
      await connection.run(`DROP TABLE IF EXISTS ${temp}`);
    }
  } finally {
    await connection.run(`DROP TABLE IF EXISTS ${raw}`);
  }
}

/** Appends the text rows through the column loaders, one data chunk (≤ the DuckDB vector size) at a time. */
async function appendTextRows(connection: DuckDBConnection, table: string, loaders: readonly ColumnLoader[], rows: readonly TextRow[]): Promise<void> {
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
          const text = (rows[start + r] as TextRow)[c] ?? null;
          column[r] = text === null || convert === undefined ? text : convert(text);
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

interface PartitionStats {
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
  temp: string,
  columns: readonly DeltaColumn[],
  partitionColumn: string,
): Promise<PartitionStats[]> {
  const selects: string[] = [`${quoteIdentifier(partitionColumn)} AS p`, 'count(*) AS n'];
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
  const reader = await connection.runAndReadAll(`SELECT ${selects.join(', ')} FROM ${temp} GROUP BY 1 ORDER BY 1`);
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
    return { partitionValue: typeof p === 'string' ? p : null, numRecords, statsJson };
  });
}
