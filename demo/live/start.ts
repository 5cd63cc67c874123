import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { lakeTableDir, loadConfig } from '../../src/config.ts';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { startApi, type ApiServer } from '../../src/server/app.ts';
import { assertSafeExposure } from '../../src/server/exposure.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { SCHEDULED_JOBS } from '../../src/lifecycle/scheduled-jobs.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { vendorRoutes } from './vendor-routes.ts';
import { TickStreamer, streamOptions } from '../../src/ticks/streamer.ts';
import { CdfSync } from '../../src/cdf/cdf-sync.ts';
import { runBackfill } from '../../src/ticks/backfill.ts';

/**
 * npm start: the whole pipeline in one process tree — Postgres (embedded unless DATABASE_URL),
 * migrations, the scheduler with every job, stream_ticks and the GraphQL server — stopped in
 * order on Ctrl-C / SIGTERM so the next start resumes cleanly.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const config = loadConfig();
const logger = createLogger(config.logLevel);

let db: DatabaseHandle | undefined;
let api: ApiServer | undefined;
let scheduler: Scheduler | undefined;
let streamer: TickStreamer | undefined;
let sync: CdfSync | undefined;
let stopping = false;

/** Runs one shutdown step, giving up on it (with a warning) rather than hanging the exit. */
async function step(name: string, work: (() => Promise<unknown>) | undefined, timeoutMs = 15_000): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
  try {
    const result = await Promise.race([work(), timeout]);
    if (result === 'timeout') logger.warn({ step: name, timeoutMs }, 'shutdown step timed out; continuing');
  } catch (err) {
    logger.warn({ step: name, err: (err as Error).message }, 'shutdown step failed; continuing');
  } finally {
    clearTimeout(timer);
  }
}

async function stopAll(): Promise<void> {
  await step('stream_ticks', streamer && (() => streamer!.stop()));
  await step('scheduler', scheduler && (() => scheduler!.stop()));
  // Before the database: whatever is complete is committed to the lake, then the slot rests.
  await step('cdf_sync', sync && (() => sync!.stop()));
  await step('api', api && (() => api!.close()));
  await step('postgres', db && (() => db!.stop()), 60_000);
}

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'shutting down');
  await stopAll();
  logger.info('stopped');
  process.exit(0);
}

/** The database is lost for good (the embedded Postgres cannot be restarted), or the process is in an unknown state: stop the rest, exit 1. */
async function fatal(err: Error, why = 'database lost; stopping'): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.error({ err: err.stack ?? err.message }, why);
  await stopAll();
  // The last line a user sees says what went wrong, in one line.
  console.error(`lakets: ${err.message}`);
  process.exit(1);
}

process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));
// The last line of defence: every request path and job handles its own errors, so a promise
// rejected with nobody listening is a bug to log, not a reason to stop serving everyone else
// (Node would end the process). A synchronous throw that escapes to the event loop leaves state
// unknown: stop in order and exit 1.
process.on('unhandledRejection', (reason) => logger.error({ err: reason instanceof Error ? reason.stack : String(reason) }, 'unhandled promise rejection'));
process.on('uncaughtException', (err) => void fatal(err, 'uncaught exception; stopping'));

try {
  // Refuse an unsafe HOST before anything starts (no Postgres to stop afterwards).
  assertSafeExposure(config);
  db = await openDatabase(config, logger);
  db.onFatal((err) => void fatal(err));
  scheduler = new Scheduler(db.url, config, logger);
  // Chunks exist before the first tick arrives.
  await scheduler.runNow(partitionManager);
  await runBackfill(db.url, config, logger);
  for (const entry of SCHEDULED_JOBS) scheduler.schedule(entry);

  // cdf_sync: continuous, on a direct connection. A configuration problem (wal_level not logical)
  // is reported and leaves the lake and tiering closed; the rest of the demo keeps running.
  sync = new CdfSync({
    url: db.directUrl,
    tableDir: lakeTableDir(config.dataDir),
    batchMaxMs: config.cdf.batchMaxMs,
    logger,
  });
  sync.start().catch((err: Error) => logger.error({ err: err.message }, 'cdf_sync cannot run: the lake stays behind and tiering defers'));

  api = await startApi({
    apiUrl: db.apiUrl,
    listenUrl: db.directUrl,
    port: config.port,
    host: config.host,
    logger,
    staticDir: path.join(here, 'public'),
    routes: vendorRoutes(),
    lakeDir: lakeTableDir(config.dataDir),
    health: db.health,
    security: config.security,
    statementTimeoutMs: config.apiStatementTimeoutMs,
  });

  scheduler.onOutcome((job, outcome) => api?.metrics.observeJob({ job, status: outcome.status, ms: outcome.ms }));

  if (config.tickRate > 0) {
    streamer = new TickStreamer(db.url, streamOptions(config), logger);
    await streamer.start();
  }
  logger.info(
    { profile: config.profile, tickRate: config.tickRate, symbols: config.symbols, chunkInterval: config.policy.chunkInterval },
    'LakeTS Live is running',
  );
  console.log(`\n  LakeTS Live is running (profile ${config.profile})\n`);
  console.log(`  Dashboard:  ${api.url}/`);
  console.log(`  GraphiQL:   ${api.url}/graphql`);
  console.log(`  Metrics:    ${api.url}/metrics`);
  console.log(`  Health:     ${api.url}/health   Ready: ${api.url}/ready`);
  console.log(`  Data:       ${config.databaseUrl ? 'DATABASE_URL' : config.dataDir}`);
  if (db.embedded) console.log(`  Postgres:   ${db.embedded.cluster.pgData} (log: ${path.join(config.dataDir, 'postgres.log')})`);
  console.log(`\n  Ctrl-C stops everything cleanly.\n`);
} catch (err) {
  stopping = true;
  await stopAll();
  // The last line a user sees says what went wrong, in one line.
  console.error(`lakets: ${(err as Error).message}`);
  process.exit(1);
}
