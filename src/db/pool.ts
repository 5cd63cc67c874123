import { Kysely, PostgresDialect, type AbortableQueryOptions } from 'kysely';
import pg from 'pg';
import type { Database } from './tables.ts';
import { apiTypes } from './pg-types.ts';

export type Db = Kysely<Database>;

export interface PoolOptions {
  max?: number;
  applicationName?: string;
  /**
   * statement_timeout of every session of this pool, in ms (unset: the server's). Set on each
   * connection rather than on a role, so it holds whatever DATABASE_API_URL points at.
   */
  statementTimeoutMs?: number;
  /** Longest a query waits for a free connection before failing (unset: forever). */
  acquireTimeoutMs?: number;
}

export function createPool(connectionString: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'lakets-api',
    idleTimeoutMillis: 30_000,
    ...(options.acquireTimeoutMs !== undefined ? { connectionTimeoutMillis: options.acquireTimeoutMs } : {}),
    types: apiTypes,
    // The API speaks UTC (bucket origins, DateTime scalars), and a UTC session's timestamptz text
    // takes apiTypes' fast path whatever the server's default TimeZone is. A SET rather than a
    // startup option, which connection poolers may refuse.
    onConnect: async (client: pg.ClientBase) => {
      await client.query("SET TimeZone = 'UTC'");
      if (options.statementTimeoutMs !== undefined) {
        await client.query(`SELECT set_config('statement_timeout', $1, false)`, [`${Math.round(options.statementTimeoutMs)}ms`]);
      }
    },
  });
  // An idle client losing its backend (server restart, pg_terminate_backend) must not crash the
  // process: the pool discards it and the next query opens a fresh connection.
  pool.on('error', () => undefined);
  return pool;
}

export function createDb(pool: pg.Pool): Db {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/**
 * Query options that stop the database work when `signal` fires (the client went away): the running
 * statement is cancelled (pg_cancel_backend), its connection stays in the pool.
 */
export function cancelledBy(signal: AbortSignal | undefined): AbortableQueryOptions {
  return signal ? { signal, inflightQueryAbortStrategy: 'cancel query' } : {};
}
