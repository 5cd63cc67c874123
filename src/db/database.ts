import pg from 'pg';
import { TICK_TABLE, type Config } from '../config.ts';
import { roleUrl, type EmbeddedCredentials } from './embedded/credentials.ts';
import { DatabaseProbe, type DatabaseHealth } from './database-health.ts';
import { ensureDatabase, runningEmbeddedServer } from './embedded/postgres.ts';
import { protectJobLocks, secureEmbeddedDatabase } from './roles.ts';
import { migrate } from './migrate.ts';
import { PostgresSupervisor } from './embedded/supervisor.ts';
import type { Logger } from '../logger.ts';

export { API_ROLE, APP_ROLE } from './embedded/credentials.ts';

export interface DatabaseHandle {
  /** General connection of the jobs and the tick streamer (the app role on the embedded server). */
  url: string;
  /** Direct connection for LISTEN and replication (the app role on the embedded server). */
  directUrl: string;
  /** Connection for the API's queries (the read-only role on the embedded server). */
  apiUrl: string;
  /** The supervised embedded Postgres, when DATABASE_URL is not set. */
  embedded?: PostgresSupervisor;
  /** The database's state for /health. */
  health(): DatabaseHealth;
  /** Called when the database is lost for good (the embedded Postgres cannot be restarted). */
  onFatal(listener: (error: Error) => void): void;
  stop(): Promise<void>;
}

export const EMBEDDED_DATABASE = 'lakets';

/**
 * Resolves the database: DATABASE_URL when set, otherwise the embedded Postgres in
 * LAKETS_DATA_DIR (supervised: restarted after a crash); then brings the schema up to date, sets
 * up the roles and applies the configured policy. On the embedded server the superuser only runs
 * the migrations and the role set-up; everything else connects as the app or the API role.
 */
export async function openDatabase(
  config: Config,
  logger: Logger,
  options: { joinRunning?: boolean } = {},
): Promise<DatabaseHandle> {
  if (config.databaseUrl) return openExternal(config, logger);
  const running = options.joinRunning ? runningEmbeddedServer(config.dataDir) : undefined;
  if (running) {
    // A one-off job next to `npm start`: use the server it runs instead of refusing the data dir.
    const handle = await setUpEmbedded(config, logger, running.port, running.credentials);
    const probe = new DatabaseProbe(handle.url);
    return { ...handle, health: () => probe.health(), onFatal: () => undefined, stop: async () => undefined };
  }
  const started = Date.now();
  const supervisor = await PostgresSupervisor.start({ dataDir: config.dataDir, port: config.embeddedPgPort, logger });
  try {
    const handle = await setUpEmbedded(config, logger, supervisor.cluster.port, supervisor.cluster.credentials);
    logger.info(
      { port: supervisor.cluster.port, dataDir: config.dataDir, pgData: supervisor.cluster.pgData, ms: Date.now() - started },
      'embedded Postgres started',
    );
    return {
      ...handle,
      embedded: supervisor,
      health: () => supervisor.health(),
      onFatal: (listener) => supervisor.onFatal(listener),
      stop: () => supervisor.stop(),
    };
  } catch (err) {
    await supervisor.stop();
    throw err;
  }
}

async function setUpEmbedded(
  config: Config,
  logger: Logger,
  port: number,
  credentials: EmbeddedCredentials,
): Promise<Pick<DatabaseHandle, 'url' | 'directUrl' | 'apiUrl'>> {
  const adminUrl = await ensureDatabase(roleUrl(port, credentials.superuser, 'postgres'), EMBEDDED_DATABASE);
  const applied = await migrate(adminUrl);
  if (applied.length) logger.info({ applied }, 'migrations applied');
  await secureEmbeddedDatabase(adminUrl, credentials, {
    statementTimeoutMs: config.apiStatementTimeoutMs,
    connectionLimit: config.apiConnectionLimit,
  });
  const url = roleUrl(port, credentials.app, EMBEDDED_DATABASE);
  await applyPolicy(url, config);
  return { url, directUrl: url, apiUrl: config.databaseApiUrl ?? roleUrl(port, credentials.api, EMBEDDED_DATABASE) };
}

async function openExternal(config: Config, logger: Logger): Promise<DatabaseHandle> {
  const url = config.databaseUrl!;
  const apiUrl = config.databaseApiUrl ?? url;
  logger.info({ database: new URL(url).pathname.slice(1) }, 'using external Postgres (DATABASE_URL)');
  const applied = await migrate(url);
  if (applied.length) logger.info({ applied }, 'migrations applied');
  await applyPolicy(url, config);
  await protectJobLocks(url, apiUrl, logger);
  const probe = new DatabaseProbe(url).start();
  return {
    url,
    directUrl: config.databaseDirectUrl ?? url,
    apiUrl,
    health: () => probe.health(),
    onFatal: () => undefined,
    stop: async () => probe.stop(),
  };
}

/** The profile's chunk interval, skew and lifecycle thresholds for the tick ChronoTable (existing chunks keep their ranges). */
export async function applyPolicy(url: string, config: Config): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(
      `SELECT lakets.set_chronotable_policy($3, $1::interval, NULL, $2::interval)
        WHERE (SELECT (chunk_interval, max_future_skew) IS DISTINCT FROM ($1::interval, $2::interval)
                 FROM lakets.chronotables WHERE table_name = $3)`,
      [config.policy.chunkInterval, config.maxFutureSkew, TICK_TABLE],
    );
    await client.query(`SELECT lakets.add_tiered_retention_policy($3, $1::interval, $2::interval, 'tick_id')`, [
      config.policy.tierAfter,
      config.policy.dropAfter,
      TICK_TABLE,
    ]);
  } finally {
    await client.end();
  }
}
