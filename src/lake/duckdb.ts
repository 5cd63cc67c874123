// The one DuckDB of this process: in-memory, created on first use, shared by the lake reader and
// (later) the lake writer. Each query gets its own short-lived connection, because a DuckDB connection
// must not run two statements at once and callers here are concurrent async code.

import { DuckDBInstance, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { toPlainRow, type PlainRow } from './duckdb-values.ts';

export type DuckDBParams = DuckDBValue[] | Record<string, DuckDBValue>;

let instancePromise: Promise<DuckDBInstance> | undefined;

/** The shared in-memory DuckDB instance, created lazily (concurrent first callers share one creation). */
export function getDuckDB(): Promise<DuckDBInstance> {
  instancePromise ??= createInstance().catch((error: unknown) => {
    instancePromise = undefined; // let a later call try again instead of caching the failure
    throw error;
  });
  return instancePromise;
}

async function createInstance(): Promise<DuckDBInstance> {
  const instance = await DuckDBInstance.create(':memory:', {
    // Everything we need (parquet, json, icu) is built in. Never fetch extensions from the network:
    // the machine is offline, and an extension appearing later must not change query results.
    autoinstall_known_extensions: 'false',
    autoload_known_extensions: 'false',
  });
  const connection = await instance.connect();
  try {
    // With ICU loaded the session time zone defaults to the machine's; casts between TIMESTAMP and
    // TIMESTAMPTZ would then shift by the local offset. Delta's `timestamp` is UTC, so pin it.
    await connection.run(`SET GLOBAL TimeZone = 'UTC'`);
  } finally {
    connection.closeSync();
  }
  return instance;
}

/** Runs `work` on a fresh connection to the shared instance and always closes it afterwards. */
export async function withDuckDBConnection<T>(work: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
  const connection = await (await getDuckDB()).connect();
  try {
    return await work(connection);
  } finally {
    connection.closeSync();
  }
}

/** Runs one query and returns its rows as plain JS objects (see duckdb-values.ts for the value mapping). */
export async function queryRows(sql: string, params?: DuckDBParams): Promise<PlainRow[]> {
  return withDuckDBConnection(async (connection) => {
    const reader = await connection.runAndReadAll(sql, params);
    return reader.getRowObjects().map(toPlainRow);
  });
}

/** Runs statements whose results nobody needs (COPY, CREATE ...). */
export async function runSql(sql: string, params?: DuckDBParams): Promise<void> {
  await withDuckDBConnection(async (connection) => {
    await connection.run(sql, params);
  });
}
