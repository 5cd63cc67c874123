import pg from 'pg';
import type { Config } from './config.ts';
import { ensureDatabase, runningEmbeddedServer, startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres.ts';
import { migrate } from './migrate.ts';
import type { Logger } from './logger.ts';

export interface DatabaseHandle {
  /** Pooled/general connection (jobs, API unless DATABASE_API_URL is set). */
  url: string;
  /** Direct connection for LISTEN and replication. */
  directUrl: string;
  /** Connection for the API's queries. */
  apiUrl: string;
  embedded?: EmbeddedPostgres;
  stop(): Promise<void>;
}

export const EMBEDDED_DATABASE = 'lakets';

/**
 * Resolves the database: DATABASE_URL when set, otherwise the embedded Postgres in
 * LAKETS_DATA_DIR; then brings the schema up to date and applies the configured policy.
 */
export async function openDatabase(
  config: Config,
  logger: Logger,
  options: { joinRunning?: boolean } = {},
): Promise<DatabaseHandle> {
  let handle: DatabaseHandle;
  let embeddedApiRole = false;
  const running = !config.databaseUrl && options.joinRunning ? runningEmbeddedServer(config.dataDir) : undefined;
  if (running) {
    // A one-off job next to `npm start`: use the server it runs instead of refusing the data dir.
    const url = await ensureDatabase(running, EMBEDDED_DATABASE);
    handle = { url, directUrl: url, apiUrl: config.databaseApiUrl ?? url, stop: async () => undefined };
  } else if (config.databaseUrl) {
    handle = {
      url: config.databaseUrl,
      directUrl: config.databaseDirectUrl ?? config.databaseUrl,
      apiUrl: config.databaseApiUrl ?? config.databaseUrl,
      stop: async () => undefined,
    };
    logger.info({ database: new URL(config.databaseUrl).pathname.slice(1) }, 'using external Postgres (DATABASE_URL)');
  } else {
    const started = Date.now();
    const embedded = await startEmbeddedPostgres({ dataDir: config.dataDir, port: config.embeddedPgPort });
    try {
      const url = await ensureDatabase(embedded.adminUrl, EMBEDDED_DATABASE);
      handle = { url, directUrl: url, apiUrl: config.databaseApiUrl ?? url, embedded, stop: () => embedded.stop() };
      embeddedApiRole = !config.databaseApiUrl;
    } catch (err) {
      await embedded.stop();
      throw err;
    }
    logger.info({ port: embedded.port, dataDir: config.dataDir, ms: Date.now() - started }, 'embedded Postgres started');
  }
  try {
    const applied = await migrate(handle.url);
    if (applied.length) logger.info({ applied }, 'migrations applied');
    await applyPolicy(handle.url, config);
    if (embeddedApiRole) handle.apiUrl = await ensureReadOnlyApiRole(handle.url);
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

/** The profile's chunk interval, skew and lifecycle thresholds for the tick ChronoTable (existing chunks keep their ranges). */
export async function applyPolicy(url: string, config: Config): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(
      `SELECT lakets.set_chronotable_policy('stock_ticks', $1::interval, NULL, $2::interval)
        WHERE (SELECT (chunk_interval, max_future_skew) IS DISTINCT FROM ($1::interval, $2::interval)
                 FROM lakets.chronotables WHERE table_name = 'stock_ticks')`,
      [config.policy.chunkInterval, config.maxFutureSkew],
    );
    await client.query(`SELECT lakets.add_tiered_retention_policy('stock_ticks', $1::interval, $2::interval, 'tick_id')`, [
      config.policy.tierAfter,
      config.policy.dropAfter,
    ]);
  } finally {
    await client.end();
  }
}

export const API_ROLE = 'lakets_api';

/**
 * The API reads through a read-only role (docs/ARCHITECTURE.md §9): a GraphQL bug can never write. On the
 * embedded server we own the cluster and create it; with DATABASE_URL, DATABASE_API_URL may name
 * one the operator made.
 */
export async function ensureReadOnlyApiRole(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`
      DO $$
      BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${API_ROLE}') THEN
          CREATE ROLE ${API_ROLE} LOGIN PASSWORD 'lakets';
        END IF;
      END $$;
      ALTER ROLE ${API_ROLE} SET default_transaction_read_only = on;
      GRANT USAGE ON SCHEMA public, lakets TO ${API_ROLE};
      GRANT SELECT ON ALL TABLES IN SCHEMA public, lakets TO ${API_ROLE};
      ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO ${API_ROLE};
      ALTER DEFAULT PRIVILEGES IN SCHEMA lakets GRANT SELECT ON TABLES TO ${API_ROLE};`);
    const dbName = new URL(url).pathname.slice(1);
    await client.query(`GRANT CONNECT ON DATABASE ${client.escapeIdentifier(dbName)} TO ${API_ROLE}`);
  } finally {
    await client.end();
  }
  const api = new URL(url);
  api.username = API_ROLE;
  api.password = 'lakets';
  return api.toString();
}
