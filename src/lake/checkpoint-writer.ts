// Writes a classic single-file Parquet checkpoint (Delta protocol "Checkpoints"): one row per action of
// the table state at a version (protocol, metaData, every txn, every live add), each in its own struct
// column, the others null. DuckDB builds it from newline-delimited JSON with an explicit schema, so the
// column types are the protocol's (maps for partitionValues/configuration, longs for sizes and
// versions). Removed files still within the retention period are kept as `remove` rows, as the
// protocol asks. Then `_last_checkpoint` points at it. Both are replaced atomically (a local store renames
// a fsynced temp file; an object store's PUT replaces whole); a crash leaves either no checkpoint
// (readers replay the commits) or a complete one.

import { randomUUID } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { addActionLine, removeActionLine, type AddAction, type RemoveAction } from './data-files.ts';
import { quoteLiteral } from './sql.ts';
import type { LakeStore } from './store/lake-store.ts';

export interface CheckpointState {
  readonly version: number;
  readonly protocol: { readonly minReaderVersion: number; readonly minWriterVersion: number };
  readonly metaData: Readonly<Record<string, unknown>>;
  readonly txns: ReadonlyMap<string, bigint>;
  readonly adds: Iterable<AddAction>;
  /** Tombstones still within the retention period: readers (and VACUUM in other engines) must know them. */
  readonly removes?: Iterable<RemoveAction>;
}

const CHECKPOINT_COLUMNS = {
  protocol: 'STRUCT(minReaderVersion INTEGER, minWriterVersion INTEGER)',
  metaData:
    'STRUCT(id VARCHAR, "name" VARCHAR, description VARCHAR, format STRUCT(provider VARCHAR, "options" MAP(VARCHAR, VARCHAR)), ' +
    'schemaString VARCHAR, partitionColumns VARCHAR[], "configuration" MAP(VARCHAR, VARCHAR), createdTime BIGINT)',
  txn: 'STRUCT(appId VARCHAR, "version" BIGINT, lastUpdated BIGINT)',
  add:
    'STRUCT(path VARCHAR, partitionValues MAP(VARCHAR, VARCHAR), size BIGINT, modificationTime BIGINT, dataChange BOOLEAN, ' +
    'stats VARCHAR, tags MAP(VARCHAR, VARCHAR))',
  remove:
    'STRUCT(path VARCHAR, deletionTimestamp BIGINT, dataChange BOOLEAN, extendedFileMetadata BOOLEAN, ' +
    'partitionValues MAP(VARCHAR, VARCHAR), size BIGINT)',
} as const;

export function checkpointFileName(version: number): string {
  return `${String(version).padStart(20, '0')}.checkpoint.parquet`;
}

/**
 * Writes the checkpoint of `state.version` into the table's store (rooted at the table) and updates
 * `_last_checkpoint`. Returns the number of actions.
 */
export async function writeCheckpoint(connection: DuckDBConnection, store: LakeStore, state: CheckpointState): Promise<number> {
  const lines: string[] = [
    JSON.stringify({ protocol: state.protocol }),
    JSON.stringify({ metaData: state.metaData }),
  ];
  for (const [appId, version] of state.txns) {
    // The version is a 64-bit LSN: written as exact digits, never through a JS number.
    lines.push(`{"txn":{"appId":${JSON.stringify(appId)},"version":${version.toString()}}}`);
  }
  for (const add of state.adds) {
    lines.push(addActionLine(add));
  }
  for (const remove of state.removes ?? []) {
    lines.push(removeActionLine(remove));
  }
  const jsonPath = path.join(os.tmpdir(), `lakets-checkpoint-${randomUUID()}.json`);
  const staged = await store.stage(`_delta_log/${checkpointFileName(state.version)}`);
  await writeFile(jsonPath, lines.join('\n') + '\n');
  try {
    const columns = Object.entries(CHECKPOINT_COLUMNS)
      .map(([name, type]) => `${quoteLiteral(name)}: ${quoteLiteral(type)}`)
      .join(', ');
    await connection.run(
      `COPY (SELECT protocol, metaData, txn, "add", "remove"
               FROM read_json(${quoteLiteral(jsonPath)}, format = 'newline_delimited', columns = {${columns}}))
         TO ${quoteLiteral(staged.localPath)} (FORMAT parquet)`,
    );
    await staged.publish();
  } finally {
    await rm(jsonPath, { force: true });
    await staged.discard();
  }
  await store.write('_delta_log/_last_checkpoint', JSON.stringify({ version: state.version, size: lines.length }));
  return lines.length;
}
