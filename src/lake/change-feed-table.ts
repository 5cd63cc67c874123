// The shape of a change-feed lake table (docs/ARCHITECTURE.md §6) as the sync writes it:
//
//   <source columns>      Postgres types mapped to Delta types (timestamptz -> timestamp, microseconds kept)
//   _change_type string   insert | delete | update_preimage | update_postimage
//   _lsn long             commit LSN of the source transaction, as a 64-bit integer (lsn.ts)
//   _commit_timestamp timestamp  commit time of the source transaction (microseconds)
//   date string           partition column: the UTC day (YYYY-MM-DD) of the source's time column
//
// metaData.configuration binds the table to its source (ARCHITECTURE.md H7); `txn.appId` is stable per table and
// `txn.version` is the commit LSN of the last source transaction a commit holds.

import type { DayPartition, DeltaColumn } from './data-files.ts';
import type { DeltaPrimitiveTypeName } from './schema.ts';
import { SOURCE_BINDING_PREFIX } from './writer.ts';

export const CHANGE_FEED_PARTITION_COLUMN = 'date';

/** Postgres type name (format_type) -> Delta type. Types not listed are refused. */
const DELTA_TYPE_OF_PG: Readonly<Record<string, DeltaPrimitiveTypeName>> = {
  'timestamp with time zone': 'timestamp',
  'timestamp without time zone': 'timestamp_ntz',
  text: 'string',
  'character varying': 'string',
  'double precision': 'double',
  real: 'float',
  bigint: 'long',
  integer: 'integer',
  smallint: 'short',
  boolean: 'boolean',
  date: 'date',
};

export interface SourceColumn {
  readonly name: string;
  /** format_type() without the type modifier, e.g. 'timestamp with time zone'. */
  readonly pgType: string;
}

export function deltaTypeOfPg(pgType: string, column: string): DeltaPrimitiveTypeName {
  const base = pgType.replace(/\(.*\)$/, '').trim();
  const type = DELTA_TYPE_OF_PG[base];
  if (type === undefined) throw new Error(`column ${column}: Postgres type ${pgType} has no change-feed mapping`);
  return type;
}

/** The data columns of the change-feed table of a source with these columns. */
export function changeFeedColumns(source: readonly SourceColumn[]): DeltaColumn[] {
  return [
    ...source.map((c) => ({ name: c.name, type: deltaTypeOfPg(c.pgType, c.name) })),
    { name: '_change_type', type: 'string' },
    { name: '_lsn', type: 'long' },
    { name: '_commit_timestamp', type: 'timestamp' },
  ];
}

export function changeFeedPartition(timeColumn: string): DayPartition {
  return { column: CHANGE_FEED_PARTITION_COLUMN, fromTimestamp: timeColumn };
}

export interface SourceIdentity {
  /** pg_control_system().system_identifier: differs between clusters, where LSNs restart low. */
  readonly systemIdentifier: string;
  readonly database: string;
  readonly slot: string;
  /** schema.table of the source. */
  readonly table: string;
}

/** metaData.configuration keys binding a table to its source. */
export function sourceBinding(source: SourceIdentity): Record<string, string> {
  return {
    [`${SOURCE_BINDING_PREFIX}systemIdentifier`]: source.systemIdentifier,
    [`${SOURCE_BINDING_PREFIX}database`]: source.database,
    [`${SOURCE_BINDING_PREFIX}slot`]: source.slot,
    [`${SOURCE_BINDING_PREFIX}table`]: source.table,
  };
}

/** The txn appId of a source table's sync: stable for the table. */
export function changeFeedAppId(schemaTable: string): string {
  return `lakets-cdf:${schemaTable}`;
}
