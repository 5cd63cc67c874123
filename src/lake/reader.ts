// Reads a snapshot's rows through DuckDB. The SQL names exactly the snapshot's live files; it never globs
// the table folder, which would also read removed files, orphans and checkpoints (docs/ARCHITECTURE.md H13).

import { stat } from 'node:fs/promises';
import type { DeltaDataFile } from './actions.ts';
import { assertFilesAreLocal, withLocalFiles } from './local-snapshot.ts';
import { queryRows } from './duckdb.ts';
import type { PlainRow } from './duckdb-values.ts';
import { DeltaLogError, UnsupportedDeltaFeatureError } from './errors.ts';
import { partitionValueSql } from './partition-values.ts';
import { duckdbTypeOf, isPrimitiveType, type DeltaStructField } from './schema.ts';
import type { DeltaSnapshot } from './snapshot.ts';
import { quoteIdentifier, quoteLiteral } from './sql.ts';

export interface LiveRowsSqlOptions {
  /** Columns to return, in this order; all schema columns (in schema order) when omitted. */
  readonly columns?: readonly string[];
}

export interface ReadRowsOptions extends LiveRowsSqlOptions {
  /** A DuckDB predicate over the table's columns. Trusted SQL text: never pass user input here. */
  readonly where?: string;
  /** A DuckDB ORDER BY list, e.g. `"id", "time" DESC`. Trusted SQL text. */
  readonly orderBy?: string;
  readonly limit?: number;
}

/** Characters DuckDB expands as a glob in a file name; a live file named so could match other files. */
const GLOB_CHARACTERS = /[*?[\]{}]/;

/**
 * A DuckDB SELECT over exactly the snapshot's live rows, with schema column names and DuckDB types
 * (see schema.ts), partition columns filled in from the log. Use it as a subquery:
 * `SELECT count(*) FROM (${liveRowsSql(snapshot)}) AS t`. Zero live files gives zero rows with the same columns.
 */
export function liveRowsSql(snapshot: DeltaSnapshot, options: LiveRowsSqlOptions = {}): string {
  const fields = snapshot.metaData.schema.fields;
  if (options.columns !== undefined && options.columns.length === 0) throw new Error('columns must name at least one column');
  const selected = options.columns === undefined ? fields : options.columns.map((name) => findField(snapshot, name));
  const partitionColumns = new Set(snapshot.metaData.partitionColumns);
  const dataFields = fields.filter((field) => !partitionColumns.has(field.name));
  assertFilesAreLocal(snapshot);

  if (snapshot.files.length === 0) {
    const nulls = selected.map((field) => `CAST(NULL AS ${duckdbTypeOf(field.type)}) AS ${quoteIdentifier(field.name)}`);
    return `SELECT ${nulls.join(', ')} LIMIT 0`;
  }

  // One branch per distinct partition tuple, not per file: the constants are the same for every file of
  // a partition, and a table has far fewer partitions than files.
  const groups = new Map<string, DeltaDataFile[]>();
  for (const file of snapshot.files) {
    const tuple = JSON.stringify(snapshot.metaData.partitionColumns.map((column) => file.partitionValues[column] ?? null));
    const group = groups.get(tuple);
    if (group) group.push(file);
    else groups.set(tuple, [file]);
  }

  const branches: string[] = [];
  for (const files of groups.values()) {
    const sample = files[0] as DeltaDataFile;
    const projection = selected.map((field) => {
      const name = quoteIdentifier(field.name);
      if (partitionColumns.has(field.name)) {
        if (!isPrimitiveType(field.type)) throw new DeltaLogError(`partition column ${name} is not primitive`, snapshot.tableDir);
        return `${partitionSql(snapshot, sample, field)} AS ${name}`;
      }
      // Cast to the Delta type: INT96 or zone-less timestamps become TIMESTAMPTZ, narrower integers widen.
      // Nested types are left as the files have them; DuckDB's struct casts are not worth the risk.
      return isPrimitiveType(field.type) ? `CAST(${name} AS ${duckdbTypeOf(field.type)}) AS ${name}` : name;
    });
    branches.push(`SELECT ${projection.join(', ')} FROM ${dataFilesSql(snapshot, files, dataFields)}`);
  }
  return branches.join('\nUNION ALL\n');
}

/** Reads rows as plain JS objects (value mapping: duckdb-values.ts). */
export async function readRows(snapshot: DeltaSnapshot, options: ReadRowsOptions = {}): Promise<PlainRow[]> {
  // The filter and the order may use columns that are not returned, so the subquery has them all;
  // DuckDB pushes the projection down and does not read the unused ones.
  const columns = options.columns === undefined ? '*' : liveRowsColumnList(snapshot, options.columns);
  if (options.limit !== undefined && (!Number.isSafeInteger(options.limit) || options.limit < 0)) throw new RangeError(`invalid limit ${options.limit}`);
  return withLocalFiles(snapshot, (local) => {
    let sql = `SELECT ${columns} FROM (${liveRowsSql(local)}) AS delta_rows`;
    if (options.where !== undefined) sql += `\nWHERE ${options.where}`;
    if (options.orderBy !== undefined) sql += `\nORDER BY ${options.orderBy}`;
    if (options.limit !== undefined) sql += `\nLIMIT ${options.limit}`;
    return queryRows(sql);
  });
}

/**
 * Checks that every live file exists with the size the log records. A missing or truncated file would
 * otherwise show up as a DuckDB error mid-query, or worse as missing rows. Throws DeltaLogError listing them.
 */
export async function verifyLiveFiles(snapshot: DeltaSnapshot): Promise<void> {
  const problems: string[] = [];
  const store = snapshot.table.store;
  const check = async (file: DeltaDataFile): Promise<void> => {
    try {
      if (snapshot.filesAreLocal) {
        const info = await stat(file.localPath);
        if (info.size !== file.size) problems.push(`${file.path}: ${info.size} bytes on disk, ${file.size} in the log`);
      } else {
        const info = file.key === null ? undefined : await store.stat(file.key);
        if (info === undefined) problems.push(`${file.path}: not in the store`);
        else if (info.size !== file.size) problems.push(`${file.path}: ${info.size} bytes in the store, ${file.size} in the log`);
      }
    } catch (error) {
      problems.push(`${file.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  };
  // A few at a time: a remote store gets one request per file.
  const queue = [...snapshot.files];
  await Promise.all(
    Array.from({ length: Math.min(8, queue.length) }, async () => {
      for (let file = queue.shift(); file !== undefined; file = queue.shift()) await check(file);
    }),
  );
  if (problems.length > 0) {
    problems.sort();
    throw new DeltaLogError(
      `version ${snapshot.version} has ${problems.length} unreadable live file(s): ${problems.slice(0, 10).join('; ')}`,
      snapshot.tableDir,
    );
  }
}

function liveRowsColumnList(snapshot: DeltaSnapshot, columns: readonly string[]): string {
  if (columns.length === 0) throw new Error('columns must name at least one column');
  return columns.map((name) => quoteIdentifier(findField(snapshot, name).name)).join(', ');
}

function findField(snapshot: DeltaSnapshot, name: string): DeltaStructField {
  const fields = snapshot.metaData.schema.fields;
  const field = fields.find((candidate) => candidate.name === name);
  if (field === undefined) {
    throw new Error(`column '${name}' is not in the table schema (columns: ${fields.map((f) => f.name).join(', ')})`);
  }
  return field;
}

function partitionSql(snapshot: DeltaSnapshot, file: DeltaDataFile, field: DeltaStructField): string {
  if (!isPrimitiveType(field.type)) throw new Error('unreachable: nested partition column');
  try {
    return partitionValueSql(file.partitionValues[field.name], field.type, field.name);
  } catch (error) {
    throw new DeltaLogError(`${file.path}: ${(error as Error).message}`, snapshot.tableDir);
  }
}

/**
 * The rows of some data files, by column name. The extra `UNION ALL BY NAME` branch (zero rows, one
 * typed NULL per data column) makes a column that a file lacks (added to the schema after the file was
 * written) read as NULL instead of failing the query.
 */
function dataFilesSql(snapshot: DeltaSnapshot, files: readonly DeltaDataFile[], dataFields: readonly DeltaStructField[]): string {
  const paths = files.map((file) => {
    if (GLOB_CHARACTERS.test(file.localPath)) {
      throw new UnsupportedDeltaFeatureError(
        `data file ${JSON.stringify(file.path)} has glob characters in its name, which DuckDB would expand`,
        snapshot.tableDir,
        ['glob-characters-in-path'],
      );
    }
    return quoteLiteral(file.localPath);
  });
  // hive_partitioning=false: the partition values come from the log, never from directory names.
  const scan = `SELECT * FROM read_parquet([${paths.join(', ')}], hive_partitioning = false, union_by_name = true)`;
  if (dataFields.length === 0) return `(${scan})`;
  const nulls = dataFields.map((field) => `CAST(NULL AS ${duckdbTypeOf(field.type)}) AS ${quoteIdentifier(field.name)}`);
  return `(${scan} UNION ALL BY NAME (SELECT ${nulls.join(', ')} LIMIT 0))`;
}
