// A table version ready to read: the replayed log, checked by the protocol gate, with its schema parsed.

import type { DeltaDataFile, DeltaMetadataAction, DeltaProtocol, DeltaTombstone } from './actions.ts';
import { DeltaLogError, UnsupportedDeltaFeatureError } from './errors.ts';
import { replayLog } from './log.ts';
import { assertReadableProtocol } from './protocol.ts';
import { isPrimitiveType, parseSchemaString, UnsupportedDeltaTypeError, type DeltaStructType } from './schema.ts';
import { asLakeTable, type LakeTable } from './table.ts';

export interface DeltaTableMetadata extends DeltaMetadataAction {
  /** `schemaString` parsed. */
  readonly schema: DeltaStructType;
}

export interface DeltaSnapshot {
  /** Absolute path of the table folder, or the table's URL on a remote store. */
  readonly tableDir: string;
  /** The table the snapshot was loaded from (its store, and local copies of its files). */
  readonly table: LakeTable;
  /**
   * True when every live file's `localPath` is a local file DuckDB can read: always for local tables;
   * for remote ones only inside withLocalFiles, which downloads them.
   */
  readonly filesAreLocal: boolean;
  readonly version: number;
  readonly protocol: DeltaProtocol;
  readonly metaData: DeltaTableMetadata;
  /** Live data files, sorted by path. */
  readonly files: readonly DeltaDataFile[];
  /** Removed files the log still remembers, sorted by path. */
  readonly tombstones: readonly DeltaTombstone[];
  /** txn appId -> version of its last commit (for exactly-once writers: our sync stores the commit LSN). */
  readonly txns: ReadonlyMap<string, bigint>;
  /** The checkpoint replay started from, null when it replayed from commit 0. */
  readonly checkpointVersion: number | null;
  /** Anomalies that did not change the answer (stale `_last_checkpoint`, skipped unreadable checkpoint). */
  readonly warnings: readonly string[];
}

export interface LoadSnapshotOptions {
  /** Time travel: the version to load. Latest when omitted. */
  readonly version?: number;
}

/**
 * Loads a table version. Throws DeltaLogError for a broken log, DeltaVersionNotFoundError for a version
 * the log does not hold, UnsupportedDeltaFeatureError for a table this reader must not read.
 */
export async function loadSnapshot(tableInput: LakeTable | string, options: LoadSnapshotOptions = {}): Promise<DeltaSnapshot> {
  const table = asLakeTable(tableInput);
  const tableDir = table.location;
  const replayed = await replayLog(table, options);
  const { protocol, metaData } = replayed;
  if (protocol === null) throw new DeltaLogError(`version ${replayed.version} has no protocol action`, tableDir);
  if (metaData === null) throw new DeltaLogError(`version ${replayed.version} has no metaData action`, tableDir);

  assertReadableProtocol(protocol, metaData.configuration, tableDir);
  if (metaData.format.provider !== 'parquet') {
    throw new UnsupportedDeltaFeatureError(
      `cannot read Delta table ${tableDir}: data format '${metaData.format.provider}' is not parquet`,
      tableDir,
      [`format=${metaData.format.provider}`],
    );
  }
  const schema = parseSchema(metaData.schemaString, tableDir);
  assertPartitionColumns(metaData.partitionColumns, schema, tableDir);

  const files = [...replayed.files.values()].sort(byPath);
  // The gate above already refuses tables that declare deletion vectors; this catches a log that uses
  // them without declaring the feature, which would otherwise bring deleted rows back.
  const withDv = files.filter((file) => file.deletionVector !== null);
  if (withDv.length > 0) {
    throw new UnsupportedDeltaFeatureError(
      `cannot read Delta table ${tableDir}: ${withDv.length} live file(s) carry deletion vectors, e.g. ${withDv[0]?.path}`,
      tableDir,
      ['deletionVectors'],
    );
  }

  return {
    tableDir,
    table,
    filesAreLocal: table.store.localRoot !== undefined,
    version: replayed.version,
    protocol,
    metaData: { ...metaData, schema },
    files,
    tombstones: [...replayed.tombstones.values()].sort(byPath),
    txns: replayed.txns,
    checkpointVersion: replayed.checkpointVersion,
    warnings: replayed.warnings,
  };
}

function parseSchema(schemaString: string, tableDir: string): DeltaStructType {
  try {
    return parseSchemaString(schemaString);
  } catch (error) {
    if (error instanceof UnsupportedDeltaTypeError) {
      throw new UnsupportedDeltaFeatureError(`cannot read Delta table ${tableDir}: ${error.message}`, tableDir, [
        `type:${error.typeName}`,
      ]);
    }
    throw new DeltaLogError(`metaData.schemaString is malformed: ${(error as Error).message}`, tableDir);
  }
}

function assertPartitionColumns(partitionColumns: readonly string[], schema: DeltaStructType, tableDir: string): void {
  for (const column of partitionColumns) {
    const field = schema.fields.find((candidate) => candidate.name === column);
    if (field === undefined) throw new DeltaLogError(`partition column '${column}' is not in the schema`, tableDir);
    if (!isPrimitiveType(field.type)) {
      throw new DeltaLogError(`partition column '${column}' has a nested type, which Delta does not allow`, tableDir);
    }
  }
}

function byPath(a: { readonly path: string }, b: { readonly path: string }): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}
