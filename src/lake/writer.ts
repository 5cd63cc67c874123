// The Delta writer of an append-only, day-partitioned table (our change feeds, docs/ARCHITECTURE.md §6).
//
// A commit: Parquet data files written with DuckDB and made durable in the table's store (fsynced with
// their folders on a local store, uploaded to an object store); then one JSON commit (commitInfo,
// protocol + metaData on version 0, a `txn` when given, the `add`s with stats) created under its
// 20-digit name only if absent (a local store hard-links a fsynced temp file; S3 and Azure take
// `If-None-Match: *`): a second writer of the same version fails with DeltaCommitConflictError. Every
// `checkpointInterval` versions a classic Parquet checkpoint and `_last_checkpoint` follow.
//
// The table is a local folder (open with `tableDir`) or a LakeTable on any store (openTable): the same
// code writes both.
//
// The table is bound to its source through `metaData.configuration`: keys starting with
// `lakets.source.` are written when the table is created and must match when it is opened again, or
// the writer refuses (DeltaTableMismatchError). Protocol {minReaderVersion 1, minWriterVersion 2}.
//
// One writer per table, one commit at a time. Another process may still commit to the table when all
// it does is rearrange files without changing the data (compaction: `remove` and `add` actions with
// dataChange false): a commit that finds its version taken by such commits applies them to its own
// view of the table and takes the next version (Delta's optimistic concurrency). Any other commit in
// between is a concurrent writer: the commit fails with DeltaCommitConflictError and the writer is
// closed (reopen it).

import { randomUUID } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { DeltaDataFile, DeltaTombstone, LogAction } from './actions.ts';
import { addActionLine, writeDataFiles, type AddAction, type DayPartition, type DeltaColumn, type LakeRow, type RemoveAction } from './data-files.ts';
import { writeCheckpoint } from './checkpoint-writer.ts';
import { withDuckDBConnection } from './duckdb.ts';
import { readCommitsAfter } from './log.ts';
import { commitKey, lakeTableExists } from './log-listing.ts';
import { loadSnapshot } from './snapshot.ts';
import { ObjectExistsError, ObjectNotFoundError } from './store/errors.ts';
import { fileLakeTable, type LakeTable } from './table.ts';
import { DeltaCommitConflictError, DeltaTableMismatchError, LakeTableGoneError } from './writer-errors.ts';

export type { AddAction, DayPartition, DeltaColumn, LakeRow, LakeTimestamp, LakeValue } from './data-files.ts';

export const WRITER_PROTOCOL = { minReaderVersion: 1, minWriterVersion: 2 } as const;
/** Configuration keys with this prefix bind a table to its source (ARCHITECTURE.md H7). */
export const SOURCE_BINDING_PREFIX = 'lakets.source.';
export const DEFAULT_CHECKPOINT_INTERVAL = 10;
/** How long checkpoints keep tombstones by default: Delta's delta.deletedFileRetentionDuration. */
export const DEFAULT_TOMBSTONE_RETENTION_MS = 7 * 86_400_000;
export const ENGINE_INFO = 'lakets-live/0.1.0';
/** Commits of other writers a commit may catch up with before it gives up (each one is a compaction). */
const MAX_CATCH_UPS = 10;

/** Points of a commit where a test may crash the process. */
export type WriterStage = 'parquet-written' | 'commit-temp-written' | 'commit-visible';

export interface DeltaWriterOptions {
  /** The table's local folder (DeltaTableWriter.openTable takes a table on any store instead). */
  readonly tableDir: string;
  /** Data columns, in order (the partition column is not among them: it lives in the log). */
  readonly columns: readonly DeltaColumn[];
  readonly partition: DayPartition;
  /** `metaData.configuration` of a new table; its `lakets.source.*` keys must match an existing table's. */
  readonly configuration: Readonly<Record<string, string>>;
  readonly tableName?: string;
  /** A checkpoint at every version that is a multiple of this (0 = never). Default 10. */
  readonly checkpointInterval?: number;
  /** Removed files younger than this are written into checkpoints as tombstones. Default 7 days. */
  readonly tombstoneRetentionMs?: number;
  /** Called at each stage of a commit (crash injection in tests). */
  readonly onStage?: (stage: WriterStage, version: number) => void;
}

export interface CommitRequest {
  /** Rows of text values in column order. */
  readonly rows?: readonly LakeRow[];
  /** Or rows in chunks (each chunk becomes its own files), e.g. read from a cursor. */
  readonly chunks?: AsyncIterable<readonly LakeRow[]> | Iterable<readonly LakeRow[]>;
  /** The idempotent-writer marker of this commit (our sync: appId per table, version = commit LSN). */
  readonly txn?: { readonly appId: string; readonly version: bigint };
  readonly operation?: string;
  /** Extra fields of commitInfo, under `lakets` (a function is called once the rows are written). */
  readonly info?: Readonly<Record<string, unknown>> | (() => Readonly<Record<string, unknown>>);
}

export interface CommitResult {
  readonly version: number;
  readonly files: number;
  readonly rows: number;
  readonly checkpointed: boolean;
  /** Set when the commit succeeded but its checkpoint did not (the next one will cover it). */
  readonly checkpointError?: string;
}

interface MetaDataAction {
  readonly id: string;
  readonly name: string | null;
  readonly description: null;
  readonly format: { readonly provider: 'parquet'; readonly options: Record<string, string> };
  readonly schemaString: string;
  readonly partitionColumns: readonly string[];
  readonly configuration: Readonly<Record<string, string>>;
  readonly createdTime: number;
}

export function commitFileName(version: number): string {
  return `${String(version).padStart(20, '0')}.json`;
}

function schemaStringOf(columns: readonly DeltaColumn[], partition: DayPartition): string {
  const fields = [...columns.map((c) => ({ name: c.name, type: c.type })), { name: partition.column, type: 'string' }];
  return JSON.stringify({
    type: 'struct',
    fields: fields.map((f) => ({ name: f.name, type: f.type, nullable: true, metadata: {} })),
  });
}

export class DeltaTableWriter {
  private committing = false;
  private closed: string | undefined;

  private constructor(
    readonly options: DeltaWriterOptions,
    readonly table: LakeTable,
    private currentVersion: number,
    private metaData: MetaDataAction,
    private readonly txns: Map<string, bigint>,
    /** Live files by their log path. */
    private readonly adds: Map<string, AddAction>,
    /** Removed files by their log path, for the checkpoints' tombstones. */
    private readonly removes: Map<string, RemoveAction>,
    private records: number,
  ) {}

  /**
   * Opens the table at `options.tableDir`, or prepares to create it with the first commit. Refuses a
   * table bound to another source or with another schema or partitioning.
   */
  static async open(options: DeltaWriterOptions): Promise<DeltaTableWriter> {
    return DeltaTableWriter.openTable(fileLakeTable(path.resolve(options.tableDir)), options);
  }

  /** Like open(), for a table on any lake store (`options.tableDir`, if given, is ignored). */
  static async openTable(table: LakeTable, options: Omit<DeltaWriterOptions, 'tableDir'>): Promise<DeltaTableWriter> {
    const tableDir = table.location;
    const opts = { ...options, tableDir };
    const hasLog = await lakeTableExists(table);
    const expectedSchema = schemaStringOf(options.columns, options.partition);
    if (!hasLog) {
      const metaData: MetaDataAction = {
        id: randomUUID(),
        name: options.tableName ?? null,
        description: null,
        format: { provider: 'parquet', options: {} },
        schemaString: expectedSchema,
        partitionColumns: [options.partition.column],
        configuration: { ...options.configuration },
        createdTime: Date.now(),
      };
      return new DeltaTableWriter(opts, table, -1, metaData, new Map(), new Map(), new Map(), 0);
    }

    if (table.store.localRoot !== undefined) await removeStaleTempFiles(path.join(table.store.localRoot, '_delta_log'));
    const snapshot = await loadSnapshot(table);
    const existing = snapshot.metaData;
    const differences: string[] = [];
    const bindingKeys = new Set(
      [...Object.keys(options.configuration), ...Object.keys(existing.configuration)].filter((k) =>
        k.startsWith(SOURCE_BINDING_PREFIX),
      ),
    );
    for (const key of [...bindingKeys].sort()) {
      const want = options.configuration[key];
      const have = existing.configuration[key];
      if (want !== have) differences.push(`${key}: table has ${JSON.stringify(have ?? null)}, source is ${JSON.stringify(want ?? null)}`);
    }
    if (differences.length > 0) {
      throw new DeltaTableMismatchError(
        `Delta table ${tableDir} is bound to another source; refusing to append (${differences.join('; ')}). ` +
          `Move the table away (or point LAKETS_DATA_DIR elsewhere) to start a new change feed.`,
        tableDir,
        differences,
      );
    }
    const wantFields = JSON.parse(expectedSchema).fields.map((f: { name: string; type: string }) => `${f.name}:${f.type}`);
    const haveFields = existing.schema.fields.map((f) => `${f.name}:${typeof f.type === 'string' ? f.type : JSON.stringify(f.type)}`);
    if (wantFields.join(',') !== haveFields.join(',')) {
      differences.push(`schema: table has (${haveFields.join(', ')}), writer has (${wantFields.join(', ')})`);
    }
    if (existing.partitionColumns.join(',') !== options.partition.column) {
      differences.push(`partition columns: table has [${existing.partitionColumns.join(', ')}], writer has [${options.partition.column}]`);
    }
    if (differences.length > 0) {
      throw new DeltaTableMismatchError(`Delta table ${tableDir} does not match the writer: ${differences.join('; ')}`, tableDir, differences);
    }

    const adds = new Map(snapshot.files.map((file) => [file.logPath, addActionOf(file)]));
    const removes = new Map<string, RemoveAction>();
    for (const tombstone of snapshot.tombstones) {
      const remove = removeActionOf(tombstone);
      if (remove) removes.set(remove.path, remove);
    }
    const metaData: MetaDataAction = {
      id: existing.id,
      name: existing.name,
      description: null,
      format: { provider: 'parquet', options: { ...existing.format.options } },
      schemaString: existing.schemaString,
      partitionColumns: [...existing.partitionColumns],
      configuration: { ...existing.configuration },
      createdTime: existing.createdTime ?? 0,
    };
    let records = 0;
    for (const add of adds.values()) records += add.numRecords;
    return new DeltaTableWriter(opts, table, snapshot.version, metaData, new Map(snapshot.txns), adds, removes, records);
  }

  /** The table's local path, or its URL on a remote store. */
  get tableDir(): string {
    return this.table.location;
  }

  /** The latest committed version, -1 before the first commit. */
  get version(): number {
    return this.currentVersion;
  }

  /** Rows in the table's live files (from the stats). */
  get numRecords(): number {
    return this.records;
  }

  get configuration(): Readonly<Record<string, string>> {
    return this.metaData.configuration;
  }

  /**
   * Whether the table this writer knows is still in the store: its latest commit is there (a table
   * it has not created yet: nothing else is). False when the lake was emptied or replaced under it.
   */
  async tableStillThere(): Promise<boolean> {
    if (this.currentVersion < 0) return !(await lakeTableExists(this.table));
    return (await this.table.store.stat(commitKey(this.currentVersion))) !== undefined;
  }

  /** The last txn version committed for `appId`, if any. */
  txnVersion(appId: string): bigint | undefined {
    return this.txns.get(appId);
  }

  async commit(request: CommitRequest): Promise<CommitResult> {
    if (this.closed !== undefined) throw new Error(`this writer is closed: ${this.closed}`);
    if (this.committing) throw new Error('a commit is already in progress on this writer');
    this.committing = true;
    try {
      return await this.doCommit(request);
    } finally {
      this.committing = false;
    }
  }

  private async doCommit(request: CommitRequest): Promise<CommitResult> {
    const tableDir = this.table.location;
    const current = this.txns.get(request.txn?.appId ?? '');
    if (request.txn && current !== undefined && request.txn.version <= current) {
      throw new Error(`txn version ${request.txn.version} of ${request.txn.appId} is not above the committed ${current}`);
    }

    const adds: AddAction[] = [];
    await withDuckDBConnection(async (connection) => {
      const chunks = request.chunks ?? [request.rows ?? []];
      for await (const chunk of chunks) {
        adds.push(...(await writeDataFiles(connection, this.table.store, this.options.columns, this.options.partition, chunk)));
      }
    });
    this.options.onStage?.('parquet-written', this.currentVersion + 1);

    // A table emptied or replaced under this writer: the commit would start a log past version zero.
    if (!(await this.tableStillThere())) {
      this.closed = 'its table is gone from the store';
      throw new LakeTableGoneError(tableDir, this.currentVersion);
    }
    const rowCount = adds.reduce((sum, add) => sum + add.numRecords, 0);
    const info = request.info ? (typeof request.info === 'function' ? request.info() : request.info) : undefined;
    let version = this.currentVersion + 1;
    for (let catchUps = 0; ; catchUps++) {
      try {
        await this.table.store.createIfAbsent(commitKey(version), this.commitText(version, request, adds, rowCount, info), {
          beforePublish: () => this.options.onStage?.('commit-temp-written', version),
        });
        break;
      } catch (error) {
        if (!(error instanceof ObjectExistsError)) throw error;
        // Another process made this version. A compaction is caught up with; anything else is a
        // concurrent writer, and this writer's view of the table can no longer be trusted.
        const why = catchUps >= MAX_CATCH_UPS || version === 0 ? 'too many concurrent commits' : await this.catchUp();
        if (why !== undefined) {
          this.closed = `commit ${version} was created by another writer (${why})`;
          throw new DeltaCommitConflictError(tableDir, version);
        }
        version = this.currentVersion + 1;
      }
    }
    this.currentVersion = version;
    if (request.txn) this.txns.set(request.txn.appId, request.txn.version);
    for (const add of adds) this.adds.set(add.path, add);
    this.records += rowCount;
    this.options.onStage?.('commit-visible', version);

    const interval = this.options.checkpointInterval ?? DEFAULT_CHECKPOINT_INTERVAL;
    let checkpointed = false;
    let checkpointError: string | undefined;
    if (interval > 0 && version > 0 && version % interval === 0) {
      try {
        await this.checkpoint();
        checkpointed = true;
      } catch (error) {
        checkpointError = (error as Error).message;
      }
    }
    return { version, files: adds.length, rows: rowCount, checkpointed, ...(checkpointError ? { checkpointError } : {}) };
  }

  /** The commit file of `version`: commitInfo, protocol and metaData on version 0, the txn, the adds. */
  private commitText(version: number, request: CommitRequest, adds: readonly AddAction[], rowCount: number, info: Readonly<Record<string, unknown>> | undefined): string {
    const now = Date.now();
    const lines: string[] = [];
    const commitInfo: Record<string, unknown> = {
      timestamp: now,
      operation: request.operation ?? (version === 0 ? 'CREATE TABLE' : 'STREAMING UPDATE'),
      operationParameters: request.txn
        ? { outputMode: 'Append', queryId: request.txn.appId, epochId: request.txn.version.toString() }
        : {},
      readVersion: version - 1 >= 0 ? version - 1 : undefined,
      isolationLevel: 'Serializable',
      isBlindAppend: true,
      operationMetrics: { numFiles: String(adds.length), numOutputRows: String(rowCount) },
      engineInfo: ENGINE_INFO,
      txnId: randomUUID(),
      ...(info ? { lakets: info } : {}),
    };
    lines.push(JSON.stringify({ commitInfo }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
    if (version === 0) {
      lines.push(JSON.stringify({ protocol: WRITER_PROTOCOL }));
      lines.push(JSON.stringify({ metaData: this.metaData }));
    }
    if (request.txn) {
      lines.push(`{"txn":{"appId":${JSON.stringify(request.txn.appId)},"version":${request.txn.version.toString()},"lastUpdated":${now}}}`);
    }
    for (const add of adds) {
      lines.push(addActionLine(add));
    }
    return lines.join('\n') + '\n';
  }

  /**
   * Applies the commits other processes made since this writer's version, if every one of them only
   * rearranges files (see rearrangementConflict); returns why not otherwise (nothing applied then).
   */
  private async catchUp(): Promise<string | undefined> {
    const commits = await readCommitsAfter(this.table, this.currentVersion);
    if (commits.length === 0) return 'the version is taken but its commit cannot be listed';
    for (const commit of commits) {
      const why = rearrangementConflict(commit.actions);
      if (why !== undefined) return `commit ${commit.version} ${why}`;
    }
    for (const commit of commits) {
      for (const action of commit.actions) {
        if (action.kind === 'remove') {
          const removed = this.adds.get(action.tombstone.logPath);
          if (removed) {
            this.adds.delete(action.tombstone.logPath);
            this.records -= removed.numRecords;
          }
          const remove = removeActionOf(action.tombstone);
          if (remove) this.removes.set(remove.path, remove);
        } else if (action.kind === 'add') {
          const add = addActionOf(action.file);
          const replaced = this.adds.get(add.path);
          if (replaced) this.records -= replaced.numRecords;
          this.adds.set(add.path, add);
          this.removes.delete(add.path);
          this.records += add.numRecords;
        }
      }
      this.currentVersion = commit.version;
    }
    return undefined;
  }

  /** Writes a checkpoint of the current version and points `_last_checkpoint` at it. */
  async checkpoint(): Promise<void> {
    if (this.currentVersion < 0) throw new Error('nothing to checkpoint: the table has no commit yet');
    const expiry = Date.now() - (this.options.tombstoneRetentionMs ?? DEFAULT_TOMBSTONE_RETENTION_MS);
    for (const [key, remove] of this.removes) if (remove.deletionTimestamp < expiry) this.removes.delete(key);
    await withDuckDBConnection((connection) =>
      writeCheckpoint(connection, this.table.store, {
        version: this.currentVersion,
        protocol: WRITER_PROTOCOL,
        metaData: this.metaData as unknown as Record<string, unknown>,
        txns: this.txns,
        adds: this.adds.values(),
        removes: this.removes.values(),
      }),
    );
  }

  /**
   * The `commitInfo` of a committed version (the first line of its commit file), or undefined when the
   * commit is gone (cleaned up) or has none. The sync reads what it recorded there (`lakets`).
   */
  async readCommitInfo(version: number): Promise<Record<string, unknown> | undefined> {
    let text: string;
    try {
      text = (await this.table.store.read(commitKey(version))).toString('utf8');
    } catch (error) {
      if (error instanceof ObjectNotFoundError) return undefined;
      throw error;
    }
    const first = text.split('\n', 1)[0] ?? '';
    try {
      const parsed = JSON.parse(first) as { commitInfo?: unknown };
      const info = parsed.commitInfo;
      return info !== null && typeof info === 'object' && !Array.isArray(info) ? (info as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
}

/**
 * Why a commit made by another process is not one this writer may simply apply: it must only move
 * data between files (every `add` and `remove` with dataChange false), and touch neither the
 * protocol, the metadata nor any txn. Undefined when it may.
 */
export function rearrangementConflict(actions: readonly LogAction[]): string | undefined {
  for (const action of actions) {
    switch (action.kind) {
      case 'protocol':
      case 'metaData':
        return `changes the table's ${action.kind}`;
      case 'txn':
        return `holds a txn of ${action.appId}`;
      case 'add':
        if (action.file.dataChange) return 'adds data';
        break;
      case 'remove':
        if (action.tombstone.dataChange) return 'removes data';
        break;
    }
  }
  return undefined;
}

/** A live file of a snapshot as the `add` action that keeps it in checkpoints and commits. */
export function addActionOf(file: DeltaDataFile): AddAction {
  return {
    path: file.logPath,
    partitionValues: file.partitionValues,
    size: file.size,
    modificationTime: file.modificationTime,
    dataChange: file.dataChange,
    stats: file.stats === null ? '{}' : JSON.stringify(file.stats),
    numRecords: file.stats?.numRecords ?? 0,
  };
}

/** A tombstone as a `remove` action; undefined when it has no deletion time (it cannot expire, nor be checkpointed as one). */
function removeActionOf(tombstone: DeltaTombstone): RemoveAction | undefined {
  if (tombstone.deletionTimestamp === null) return undefined;
  return {
    path: tombstone.logPath,
    deletionTimestamp: tombstone.deletionTimestamp,
    dataChange: tombstone.dataChange,
    partitionValues: tombstone.partitionValues ?? {},
    size: tombstone.size ?? 0,
  };
}

/** Temp files of commits and checkpoints a crashed writer left in a local log folder (never read: not commit names). */
async function removeStaleTempFiles(logDir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(logDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (/^\.\d{20}\.(json|checkpoint\.parquet|_last_checkpoint)\..+\.tmp$/.test(name) || /^\._last_checkpoint\..+\.tmp$/.test(name)) {
      const full = path.join(logDir, name);
      const info = await stat(full).catch(() => undefined);
      if (info?.isFile()) await rm(full, { force: true });
    }
  }
}
