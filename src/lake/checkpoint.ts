// Reads the actions stored in a Parquet checkpoint. Each checkpoint row holds one action in one of the
// struct columns (protocol, metaData, txn, add, remove, ...), the others null. DuckDB's to_json turns
// each struct into the same JSON shape a commit line has (MAP columns such as partitionValues become
// JSON objects), so checkpoint rows and commit lines go through one parser.

import { normalizeActions, type LogAction } from './actions.ts';
import { withDuckDBConnection } from './duckdb.ts';
import { UnsupportedDeltaFeatureError } from './errors.ts';
import type { CheckpointFiles } from './log-listing.ts';
import { quoteIdentifier, quoteLiteral } from './sql.ts';
import { asLakeTable, type LakeTable } from './table.ts';

const ACTION_COLUMNS = ['protocol', 'metaData', 'txn', 'add', 'remove'] as const;
/** Columns that only V2 checkpoints have; their actions live partly in sidecar files we do not read. */
const V2_CHECKPOINT_COLUMNS = ['checkpointMetadata', 'sidecar'];

export async function readCheckpointActions(tableInput: LakeTable | string, checkpoint: CheckpointFiles): Promise<LogAction[]> {
  const table = asLakeTable(tableInput);
  const tableDir = table.location;
  // A checkpoint can be rewritten under its name (a writer retrying it): its listing's size and time tag the copy.
  const local = await table.localFiles(
    checkpoint.files.map((file) => ({ key: file.key, size: file.size, tag: String(file.lastModified.getTime()) })),
  );
  try {
    return await readLocalCheckpoint(table, tableDir, checkpoint, checkpoint.files.map((file) => local.pathOf(file.key)));
  } finally {
    local.release();
  }
}

async function readLocalCheckpoint(table: LakeTable, tableDir: string, checkpoint: CheckpointFiles, paths: readonly string[]): Promise<LogAction[]> {
  const source = `read_parquet([${paths.map(quoteLiteral).join(', ')}], union_by_name = true)`;
  return withDuckDBConnection(async (connection) => {
    const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`);
    const present = new Set(described.getRowObjects().map((row) => String(row['column_name'])));

    const v2Columns = V2_CHECKPOINT_COLUMNS.filter((column) => present.has(column));
    if (v2Columns.length > 0) {
      throw new UnsupportedDeltaFeatureError(
        `checkpoint ${checkpoint.version} is a V2 checkpoint (columns ${v2Columns.join(', ')}); only classic checkpoints are supported`,
        tableDir,
        ['v2Checkpoint'],
      );
    }
    const columns = ACTION_COLUMNS.filter((column) => present.has(column));
    if (columns.length === 0) return [];

    const select = columns.map((column) => `to_json(${quoteIdentifier(column)}) AS ${quoteIdentifier(column)}`);
    const anyAction = columns.map((column) => `${quoteIdentifier(column)} IS NOT NULL`).join(' OR ');
    const reader = await connection.runAndReadAll(`SELECT ${select.join(', ')} FROM ${source} WHERE ${anyAction}`);

    const actions: LogAction[] = [];
    const description = `checkpoint ${checkpoint.version}`;
    for (const row of reader.getRows()) {
      const action: Record<string, unknown> = {};
      let txnText = '';
      columns.forEach((column, index) => {
        const text = row[index];
        if (typeof text !== 'string') return;
        action[column] = JSON.parse(text);
        if (column === 'txn') txnText = text;
      });
      actions.push(...normalizeActions(action, txnText, { tableDir, localRoot: table.store.localRoot, description }));
    }
    return actions;
  });
}
