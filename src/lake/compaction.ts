// Compaction of a day-partitioned Delta table: the small files of closed days rewritten into a few
// large ones (Delta's OPTIMIZE, bin packing). The sync commits every few seconds, one small file per
// day each time; a day of them is tens of thousands of objects, each a request for every reader.
//
// What it keeps (a compaction never changes what the table means):
// - the same rows, every change event exactly once: a new file holds exactly the rows of the files it
//   replaces (checked by counting both before anything is committed), read in the order of their
//   times, so each new file covers a tight time range and readers still skip by its stats;
// - one commit: `remove` of the old files and `add` of the new ones, all with dataChange false, so
//   change-feed and streaming readers skip it; stats recomputed from the new files;
// - readers of older versions: the old files stay in the store until lake_vacuum deletes them, after
//   the retention period;
// - the sync: the commit is created only if absent, like any other. When the sync took the version
//   first, compaction reads the commits in between and tries the next version, as long as none of
//   them removed one of its input files; otherwise it gives up (its new files are deleted, never
//   named) and the next run starts again. The sync's writer, in turn, catches up with a compaction
//   that took its version (writer.ts).
//
// Bounded: at most `maxInputBytesPerRun` and `maxInputFilesPerRun` are rewritten per run, a new file
// takes at most `targetFileBytes` of input (and `maxFilesPerBin` files); the rest waits for the next run.

import { randomUUID } from 'node:crypto';
import type { DeltaDataFile } from './actions.ts';
import { addActionLine, dayPartitionStats, removeActionLine, type AddAction, type DayPartition, type DeltaColumn } from './data-files.ts';
import { withDuckDBConnection } from './duckdb.ts';
import { withLocalFiles } from './local-snapshot.ts';
import { readCommitsAfter } from './log.ts';
import { commitKey } from './log-listing.ts';
import { liveRowsSql } from './reader.ts';
import { isPrimitiveType } from './schema.ts';
import { loadSnapshot, type DeltaSnapshot } from './snapshot.ts';
import { quoteLiteral } from './sql.ts';
import { ObjectExistsError } from './store/errors.ts';
import type { LakeTable } from './table.ts';
import { ENGINE_INFO } from './writer.ts';

export interface CompactionOptions {
  /** The day partition column and the timestamp it is the UTC day of. */
  readonly partition: DayPartition;
  /** Days (partition values, YYYY-MM-DD) before this one are closed: only they are compacted. */
  readonly closedBefore: string;
  /** Input bytes one new file takes at most; files at least half as large are left alone. Default 128 MiB. */
  readonly targetFileBytes?: number;
  /** Input files one new file takes at most. Default 5,000. */
  readonly maxFilesPerBin?: number;
  /** Input bytes rewritten per run at most. Default 1 GiB. */
  readonly maxInputBytesPerRun?: number;
  /** Input files rewritten per run at most. Default 20,000. */
  readonly maxInputFilesPerRun?: number;
  /** Commits of other writers to step over before giving up. Default 10. */
  readonly maxAttempts?: number;
  /** Tests: called once the new files are in the store and before the commit. */
  readonly beforeCommit?: () => void | Promise<void>;
}

export interface CompactionResult {
  /** The version committed; undefined when nothing needed compacting or the run gave up. */
  readonly version?: number;
  readonly days: readonly string[];
  readonly filesRemoved: number;
  readonly filesAdded: number;
  readonly bytesRemoved: number;
  readonly bytesAdded: number;
  readonly rows: number;
  /** Why nothing was committed although there was work (another writer removed an input file). */
  readonly gaveUp?: string;
}

export const DEFAULT_TARGET_FILE_BYTES = 128 * 1024 * 1024;

/** One new file's worth of small files of one day. */
interface Bin {
  readonly day: string;
  readonly files: DeltaDataFile[];
  bytes: number;
}

/** Rewrites the small files of the closed days of `table` (see the top of this file). */
export async function compactTable(table: LakeTable, options: CompactionOptions): Promise<CompactionResult> {
  const snapshot = await loadSnapshot(table);
  const bins = planBins(snapshot, options);
  const empty = { days: [], filesRemoved: 0, filesAdded: 0, bytesRemoved: 0, bytesAdded: 0, rows: 0 };
  if (bins.length === 0) return empty;

  // A failure on the way (the store, DuckDB, a crash) leaves the new files written so far named by no
  // commit: orphans that lake_vacuum deletes once they are older than the retention period.
  const columns = dataColumns(snapshot, options.partition);
  const adds: AddAction[] = [];
  for (const bin of bins) adds.push(await rewriteBin(table, snapshot, bin, columns, options.partition));
  await options.beforeCommit?.();
  const removes = bins.flatMap((bin) => bin.files);
  const days = [...new Set(bins.map((bin) => bin.day))].sort();
  const outcome = await commitRearrangement(table, snapshot.version, removes, adds, days, options.maxAttempts ?? 10);
  const result = {
    days,
    filesRemoved: removes.length,
    filesAdded: adds.length,
    bytesRemoved: removes.reduce((sum, file) => sum + file.size, 0),
    bytesAdded: adds.reduce((sum, add) => sum + add.size, 0),
    rows: adds.reduce((sum, add) => sum + add.numRecords, 0),
  };
  if (typeof outcome === 'string') {
    await deleteUncommitted(table, adds);
    return { ...result, gaveUp: outcome };
  }
  return { ...result, version: outcome };
}

/** The bins of this run: small files of closed days, oldest day first, within the run's bounds. */
function planBins(snapshot: DeltaSnapshot, options: CompactionOptions): Bin[] {
  const target = options.targetFileBytes ?? DEFAULT_TARGET_FILE_BYTES;
  const maxFilesPerBin = options.maxFilesPerBin ?? 5_000;
  const maxBytes = options.maxInputBytesPerRun ?? 1024 ** 3;
  const maxFiles = options.maxInputFilesPerRun ?? 20_000;
  const timeColumn = options.partition.fromTimestamp;
  const byDay = new Map<string, DeltaDataFile[]>();
  for (const file of snapshot.files) {
    const day = file.partitionValues[options.partition.column];
    if (typeof day !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(day) || day >= options.closedBefore) continue;
    if (file.size * 2 >= target || file.key === null) continue;
    const files = byDay.get(day) ?? [];
    files.push(file);
    byDay.set(day, files);
  }
  const minTime = (file: DeltaDataFile): string => {
    const value = file.stats?.minValues?.[timeColumn];
    return typeof value === 'string' ? value : '';
  };
  const bins: Bin[] = [];
  let runBytes = 0;
  let runFiles = 0;
  for (const day of [...byDay.keys()].sort()) {
    const files = (byDay.get(day) as DeltaDataFile[]).sort((a, b) => minTime(a).localeCompare(minTime(b)) || a.path.localeCompare(b.path));
    if (files.length < 2) continue;
    let bin: Bin = { day, files: [], bytes: 0 };
    const close = (): boolean => {
      if (bin.files.length >= 2) {
        if (bins.length > 0 && (runBytes + bin.bytes > maxBytes || runFiles + bin.files.length > maxFiles)) return false;
        bins.push(bin);
        runBytes += bin.bytes;
        runFiles += bin.files.length;
      }
      bin = { day, files: [], bytes: 0 };
      return true;
    };
    for (const file of files) {
      if (bin.files.length > 0 && (bin.bytes + file.size > target || bin.files.length >= maxFilesPerBin)) {
        if (!close()) return bins;
      }
      bin.files.push(file);
      bin.bytes += file.size;
    }
    if (!close()) return bins;
  }
  return bins;
}

/** The data columns of the table (every schema column but the partition columns). */
function dataColumns(snapshot: DeltaSnapshot, partition: DayPartition): DeltaColumn[] {
  const partitionColumns = new Set(snapshot.metaData.partitionColumns);
  if (!partitionColumns.has(partition.column)) {
    throw new Error(`${snapshot.tableDir} is not partitioned by ${partition.column}: nothing to compact by day`);
  }
  return snapshot.metaData.schema.fields
    .filter((field) => !partitionColumns.has(field.name))
    .map((field) => {
      if (typeof field.type !== 'string' || !isPrimitiveType(field.type)) {
        throw new Error(`${snapshot.tableDir}: column ${field.name} is not of a primitive type, which compaction does not rewrite`);
      }
      return { name: field.name, type: field.type };
    });
}

/** Writes one new file holding exactly the rows of the bin's files, in the store; returns its `add`. */
async function rewriteBin(table: LakeTable, snapshot: DeltaSnapshot, bin: Bin, columns: readonly DeltaColumn[], partition: DayPartition): Promise<AddAction> {
  const folder = `${partition.column}=${bin.day}`;
  const key = `${folder}/part-00000-${randomUUID()}.c000.zstd.parquet`;
  const staged = await table.store.stage(key);
  try {
    const { numRecords, statsJson } = await withLocalFiles({ ...snapshot, files: bin.files }, (local) =>
      withDuckDBConnection(async (connection) => {
        // The files in the order of their first times: each new file's rows are (nearly) in time order.
        const rows = liveRowsSql(local, { columns: columns.map((c) => c.name) });
        await connection.run(`COPY (${rows}) TO ${quoteLiteral(staged.localPath)} (FORMAT parquet, COMPRESSION zstd)`);
        const counted = await connection.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM (${rows}) AS inputs`);
        const inputRows = Number(counted.getRows()[0]?.[0] ?? -1);
        const stats = await dayPartitionStats(connection, `SELECT * FROM read_parquet(${quoteLiteral(staged.localPath)})`, columns, partition);
        const only = stats[0];
        if (stats.length !== 1 || only === undefined || only.partitionValue !== bin.day || only.numRecords !== inputRows) {
          throw new Error(
            `compaction of ${bin.files.length} files of ${bin.day} in ${snapshot.tableDir} wrote ${stats.map((s) => `${s.numRecords} rows of ${s.partitionValue}`).join(', ')} ` +
              `for ${inputRows} input rows; nothing was committed`,
          );
        }
        return only;
      }),
    );
    const published = await staged.publish();
    return {
      path: key,
      partitionValues: { [partition.column]: bin.day },
      size: published.size,
      modificationTime: published.lastModified.getTime(),
      dataChange: false,
      stats: statsJson,
      numRecords,
    };
  } finally {
    await staged.discard();
  }
}

/**
 * Commits the rearrangement at the first free version after `readVersion`, stepping over commits of
 * other writers that left every input file live. Returns the version, or why it gave up.
 */
async function commitRearrangement(
  table: LakeTable,
  readVersion: number,
  removes: readonly DeltaDataFile[],
  adds: readonly AddAction[],
  days: readonly string[],
  maxAttempts: number,
): Promise<number | string> {
  const inputs = new Set(removes.map((file) => file.logPath));
  let base = readVersion;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const version = base + 1;
    try {
      await table.store.createIfAbsent(commitKey(version), commitText(base, removes, adds, days));
      return version;
    } catch (error) {
      if (!(error instanceof ObjectExistsError)) throw error;
    }
    const commits = await readCommitsAfter(table, base);
    for (const commit of commits) {
      for (const action of commit.actions) {
        if (action.kind === 'remove' && inputs.has(action.tombstone.logPath)) return `commit ${commit.version} removed ${action.tombstone.path}, an input of this compaction`;
        if (action.kind === 'metaData' || action.kind === 'protocol') return `commit ${commit.version} changed the table's ${action.kind}`;
      }
    }
    base = commits.at(-1)?.version ?? base;
  }
  return `${maxAttempts} other commits came first`;
}

function commitText(readVersion: number, removes: readonly DeltaDataFile[], adds: readonly AddAction[], days: readonly string[]): string {
  const now = Date.now();
  const commitInfo = {
    timestamp: now,
    operation: 'OPTIMIZE',
    operationParameters: { predicate: JSON.stringify(days.map((day) => `date = '${day}'`)), zOrderBy: '[]' },
    readVersion,
    isolationLevel: 'SnapshotIsolation',
    isBlindAppend: false,
    operationMetrics: {
      numRemovedFiles: String(removes.length),
      numAddedFiles: String(adds.length),
      numRemovedBytes: String(removes.reduce((sum, file) => sum + file.size, 0)),
      numAddedBytes: String(adds.reduce((sum, add) => sum + add.size, 0)),
    },
    engineInfo: ENGINE_INFO,
    txnId: randomUUID(),
    lakets: { compaction: { days } },
  };
  const lines = [JSON.stringify({ commitInfo })];
  for (const file of removes) {
    lines.push(
      removeActionLine({ path: file.logPath, deletionTimestamp: now, dataChange: false, partitionValues: file.partitionValues, size: file.size }),
    );
  }
  for (const add of adds) lines.push(addActionLine(add));
  return lines.join('\n') + '\n';
}

/**
 * New files of a compaction that gave up: no commit names them, none ever will (every version it tried
 * was refused as taken). A delete that fails leaves an orphan for lake_vacuum, so it is not an error.
 */
async function deleteUncommitted(table: LakeTable, adds: readonly AddAction[]): Promise<void> {
  await Promise.allSettled(adds.map((add) => table.store.delete(add.path)));
}
