// The application, assembled: `npm run serve` runs this file, `npm start` runs it with the live
// dashboard (demo/live/start.ts). Every part is built here from the layers below and nowhere else;
// the parts start in order and stop in reverse, each stop bounded so that a stuck part cannot hold
// the exit.
//
//   start                                        stop (reverse)
//   1. Postgres (embedded unless DATABASE_URL),  5. Postgres, last
//      migrations, roles, the policy
//   2. one-off jobs: chunks for now, the         (nothing to stop: they ran)
//      history backfill on a new database
//   3. the API: two pools, the LISTEN hub,       4. the API: server, services, hub, pools
//      the services, the HTTP/WebSocket server
//   4. the change-feed sync                      3. the sync: what is complete goes to the lake
//   5. the scheduled jobs                        2. the scheduler: running jobs finish
//   6. the tick stream                           1. the tick stream, first

import type http from 'node:http';
import pg from 'pg';
import { dataPaths, loadConfig, TICK_TABLE, type Config, type SecurityConfig } from './config.ts';
import { describeLakeStoreConfig, type LakeStoreConfig } from './config/lake-store.ts';
import { CdfSync } from './cdf/cdf-sync.ts';
import { openDatabase, type DatabaseHandle } from './db/database.ts';
import { ListenHub } from './db/listen-hub.ts';
import { createDb, createPool } from './db/pool.ts';
import { LakeReadGate, DEFAULT_LAKE_READ_GATE, type LakeReadGateOptions } from './lake/read-gate.ts';
import { closeSharedLakeTables, sharedLakeTable } from './lake/shared-tables.ts';
import { partitionManager } from './lifecycle/partition-manager.ts';
import { SCHEDULED_JOBS } from './lifecycle/scheduled-jobs.ts';
import { createLogger, type Logger } from './logger.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { assertSafeExposure } from './server/exposure.ts';
import { startServer, type ApiServer } from './server/app.ts';
import type { OperationLimits } from './server/operation-limits.ts';
import { CANDLES_CHANNEL } from './services/candle-feed.ts';
import { LVC_CHANNEL } from './services/prices.ts';
import { createServices, type Services } from './services/services.ts';
import { runBackfill } from './ticks/backfill.ts';
import { streamOptions, TickStreamer } from './ticks/streamer.ts';

/** Stops of the parts started so far, run in reverse order, each bounded in time. */
class Releasers {
  private readonly steps: Array<{ name: string; release: () => Promise<unknown>; timeoutMs: number }> = [];
  private releasing: Promise<void> | undefined;

  constructor(private readonly logger: Logger) {}

  add(name: string, release: () => Promise<unknown>, timeoutMs = 15_000): void {
    this.steps.push({ name, release, timeoutMs });
  }

  /** Idempotent: a second call waits for the first. */
  releaseAll(): Promise<void> {
    this.releasing ??= (async () => {
      for (const step of this.steps.reverse()) await this.run(step);
    })();
    return this.releasing;
  }

  /** One stop, given up on (with a warning) rather than hanging the exit. */
  private async run(step: { name: string; release: () => Promise<unknown>; timeoutMs: number }): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), step.timeoutMs)));
    try {
      const result = await Promise.race([step.release(), timeout]);
      if (result === 'timeout') this.logger.warn({ step: step.name, timeoutMs: step.timeoutMs }, 'shutdown step timed out; continuing');
    } catch (err) {
      this.logger.warn({ step: step.name, err: (err as Error).message }, 'shutdown step failed; continuing');
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Connections of the API: short reads never wait behind bulk ones (20 clients asking for 5,000 candles each must not delay anyone's latestPrice), and bulk reads are few enough at once to leave CPU. */
const SHORT_POOL_SIZE = 6;
const BULK_POOL_SIZE = 2;
/** Longest a query waits for a free connection, then SERVER_BUSY. */
const DEFAULT_ACQUIRE_TIMEOUT_MS = 15_000;
/** Most lake files one `ticks` read may fetch from a remote lake (a compacted day is a few; an hour of uncompacted 3-second commits about 1,200). */
const MAX_LAKE_READ_FILES = 2_000;

export interface ApiOptions {
  /** Connection for the API's queries (may be a read-only role: DATABASE_API_URL). */
  apiUrl: string;
  /** Direct, unpooled connection for LISTEN. */
  listenUrl: string;
  port: number;
  host?: string;
  logger: Logger;
  security: SecurityConfig;
  /** statement_timeout of every API session (Config.apiStatementTimeoutMs). */
  statementTimeoutMs: number;
  /** Extra routes served before GraphQL (the dashboard's browser libraries). Public: they must hold no data. */
  routes?: Record<string, http.RequestListener>;
  /** A folder served at / (the dashboard). */
  staticDir?: string;
  /** The lake (config.lake.store), for ticks of dropped chunks. */
  lake?: LakeStoreConfig;
  /** Lake (DuckDB) reads: concurrency, queue and per-read timeout. */
  lakeReads?: LakeReadGateOptions;
  /** Longest a query waits for a free connection (default 15 s), then SERVER_BUSY. */
  acquireTimeoutMs?: number;
  /** Overrides of the operation limits. */
  limits?: Partial<OperationLimits>;
  /** The database's state for /health. */
  health?: () => { ok: boolean } & Record<string, unknown>;
}

export interface RunningApi extends ApiServer {
  services: Services;
  hub: ListenHub;
  /** Short reads. */
  pool: pg.Pool;
  /** Bulk reads. */
  bulkPool: pg.Pool;
}

/**
 * The API part: its two pools, the one LISTEN connection, the services over them and the server
 * that serves them; closed in reverse. Also what tests and benchmarks run.
 */
export async function startApi(options: ApiOptions): Promise<RunningApi> {
  const { logger } = options;
  // Refuse an unsafe exposure before anything is opened.
  assertSafeExposure({ host: options.host ?? '127.0.0.1', security: options.security });
  const releasers = new Releasers(logger);
  try {
    const poolOptions = {
      statementTimeoutMs: options.statementTimeoutMs,
      acquireTimeoutMs: options.acquireTimeoutMs ?? DEFAULT_ACQUIRE_TIMEOUT_MS,
    };
    const pool = createPool(options.apiUrl, { ...poolOptions, applicationName: 'lakets-api', max: SHORT_POOL_SIZE });
    const bulkPool = createPool(options.apiUrl, { ...poolOptions, applicationName: 'lakets-api-bulk', max: BULK_POOL_SIZE });
    releasers.add('api pools', () => Promise.all([pool.end(), bulkPool.end()]));
    const hub = new ListenHub(options.listenUrl, logger, [LVC_CHANNEL, CANDLES_CHANNEL]);
    releasers.add('listener', () => hub.close());
    await hub.start();
    const services = createServices({
      db: createDb(pool),
      bulkDb: createDb(bulkPool),
      hub,
      ...(options.lake
        ? {
            lake: {
              table: sharedLakeTable(options.lake, TICK_TABLE),
              reads: new LakeReadGate(options.lakeReads ?? DEFAULT_LAKE_READ_GATE),
              limits: { maxFiles: MAX_LAKE_READ_FILES, maxBytes: options.lake.cacheMaxBytes },
            },
          }
        : {}),
      logger,
    });
    releasers.add('services', async () => services.close());
    const server = await startServer({
      services,
      readiness: { pingDatabase: () => pool.query('SELECT 1'), listening: () => hub.connected },
      port: options.port,
      ...(options.host ? { host: options.host } : {}),
      logger,
      ...(options.routes ? { routes: options.routes } : {}),
      ...(options.staticDir ? { staticDir: options.staticDir } : {}),
      security: options.security,
      statementTimeoutMs: options.statementTimeoutMs,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.health ? { health: options.health } : {}),
    });
    releasers.add('server', () => server.close());
    return { ...server, services, hub, pool, bulkPool, close: () => releasers.releaseAll() };
  } catch (err) {
    // e.g. the port is taken: leave nothing open behind the error
    await releasers.releaseAll();
    throw err;
  }
}

/** The live dashboard: its page and the browser libraries it loads (demo/live). */
export interface Dashboard {
  staticDir: string;
  routes: Record<string, http.RequestListener>;
}

/** The whole pipeline in one process tree, started in order and stopped in reverse. */
export class Application {
  db: DatabaseHandle | undefined;
  api: RunningApi | undefined;
  private readonly releasers: Releasers;

  constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    private readonly options: { dashboard?: Dashboard; onFatal?: (error: Error) => void } = {},
  ) {
    this.releasers = new Releasers(logger);
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    // Refuse an unsafe HOST before anything starts (no Postgres to stop afterwards).
    assertSafeExposure(config);
    const db = (this.db = await openDatabase(config, logger));
    this.releasers.add('postgres', () => db.stop(), 60_000);
    if (this.options.onFatal) db.onFatal(this.options.onFatal);
    // After everything that reads the lake has stopped: its store clients and local copies.
    this.releasers.add('lake tables', () => closeSharedLakeTables());
    logger.info({ lake: describeLakeStoreConfig(config.lake.store) }, 'the lake');

    const scheduler = new Scheduler(db.url, config, logger);
    // Chunks exist before the first tick arrives.
    await scheduler.runNow(partitionManager);
    await runBackfill(db.url, config, logger);

    const api = (this.api = await startApi({
      apiUrl: db.apiUrl,
      listenUrl: db.directUrl,
      port: config.port,
      host: config.host,
      logger,
      security: config.security,
      statementTimeoutMs: config.apiStatementTimeoutMs,
      lake: config.lake.store,
      health: db.health,
      ...(this.options.dashboard ?? {}),
    }));
    this.releasers.add('api', () => api.close());

    // cdf_sync: continuous, on a direct connection. A configuration problem (wal_level not logical)
    // is reported and leaves the lake and tiering closed; the rest keeps running.
    const sync = new CdfSync({
      url: db.directUrl,
      lake: config.lake.store,
      retentionMs: config.lake.retentionMs,
      batchMaxMs: config.cdf.batchMaxMs,
      batchMaxRows: config.cdf.batchMaxRows,
      checkpointInterval: config.cdf.checkpointEvery,
      statusIntervalMs: config.cdf.statusIntervalMs,
      logger,
    });
    // Before the database: whatever is complete is committed to the lake, then the slot rests.
    this.releasers.add('cdf_sync', () => sync.stop());
    sync.start().catch((err: Error) => logger.error({ err: err.message }, 'cdf_sync cannot run: the lake stays behind and tiering defers'));

    for (const entry of SCHEDULED_JOBS) scheduler.schedule(entry);
    scheduler.onOutcome((job, outcome) => api.metrics.observeJob({ job, status: outcome.status, ms: outcome.ms }));
    this.releasers.add('scheduler', () => scheduler.stop());

    if (config.tickRate > 0) {
      const streamer = new TickStreamer(db.url, streamOptions(config), logger);
      this.releasers.add('stream_ticks', () => streamer.stop());
      await streamer.start();
    }
  }

  /** Stops every part started, in reverse order. */
  stop(): Promise<void> {
    return this.releasers.releaseAll();
  }
}

/**
 * The process around the application: configuration, logger, signals. Ctrl-C / SIGTERM stop it in
 * order so that the next start resumes cleanly; a lost database or an uncaught exception stops it
 * in order too and exits 1 with one line saying why.
 */
export async function runApplication(options: { dashboard?: Dashboard } = {}): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    console.error(`lakets: ${(err as Error).message}`);
    process.exit(1);
  }
  const logger = createLogger(config.logLevel);
  let stopping = false;

  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await app.stop();
    logger.info('stopped');
    process.exit(0);
  };
  /** The database is lost for good (the embedded Postgres cannot be restarted), or the process is in an unknown state: stop the rest, exit 1. */
  const fatal = async (err: Error, why = 'database lost; stopping'): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.error({ err: err.stack ?? err.message }, why);
    await app.stop();
    // The last line a user sees says what went wrong, in one line.
    console.error(`lakets: ${err.message}`);
    process.exit(1);
  };
  const app = new Application(config, logger, { ...options, onFatal: (err) => void fatal(err) });

  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  // The last line of defence: every request path and job handles its own errors, so a promise
  // rejected with nobody listening is a bug to log, not a reason to stop serving everyone else
  // (Node would end the process). A synchronous throw that escapes to the event loop leaves state
  // unknown: stop in order and exit 1.
  process.on('unhandledRejection', (reason) => logger.error({ err: reason instanceof Error ? reason.stack : String(reason) }, 'unhandled promise rejection'));
  process.on('uncaughtException', (err) => void fatal(err, 'uncaught exception; stopping'));

  try {
    await app.start();
  } catch (err) {
    stopping = true;
    await app.stop();
    // The last line a user sees says what went wrong, in one line.
    console.error(`lakets: ${(err as Error).message}`);
    process.exit(1);
  }
  const { api, db } = app;
  logger.info(
    { profile: config.profile, tickRate: config.tickRate, symbols: config.symbols, chunkInterval: config.policy.chunkInterval },
    'LakeTS Live is running',
  );
  console.log(`\n  LakeTS Live is running (profile ${config.profile})\n`);
  if (options.dashboard) console.log(`  Dashboard:  ${api!.url}/`);
  console.log(`  GraphiQL:   ${api!.url}/graphql`);
  console.log(`  Metrics:    ${api!.url}/metrics`);
  console.log(`  Health:     ${api!.url}/health   Ready: ${api!.url}/ready`);
  console.log(`  Data:       ${config.databaseUrl ? 'DATABASE_URL' : config.dataDir}`);
  if (db?.embedded) console.log(`  Postgres:   ${db.embedded.cluster.pgData} (log: ${dataPaths(config.dataDir).postgresLog})`);
  console.log(`\n  Ctrl-C stops everything cleanly.\n`);
}

if (import.meta.main) await runApplication();
