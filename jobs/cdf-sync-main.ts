// Runs the change-feed sync as its own process: `tsx jobs/cdf-sync-main.ts [--once]`.
// Streams until SIGINT/SIGTERM (or, with --once, until everything committed at start is in the lake).
//
// Environment (besides DATABASE_URL / DATABASE_DIRECT_URL / LAKETS_DATA_DIR, see the README's Configuration):
//   LAKETS_CDF_TABLE             source table (default stock_ticks)
//   LAKETS_CDF_BATCH_ROWS        rows per Delta commit (default 100000)
//   LAKETS_CDF_BATCH_MS          max age of the oldest waiting transaction (default 10000)
//   LAKETS_CDF_CHECKPOINT_EVERY  Delta checkpoint interval in commits (default 10)
//   LAKETS_CDF_STATUS_MS         keepalive / cdf_state refresh period (default 1000)
//   LAKETS_CDF_CRASH_AT          tests only: parquet-written | commit-temp-written |
//                                commit-visible-before-ack | after-ack -> SIGKILL itself there
//   LAKETS_CDF_CRASH_AFTER_COMMITS  ...once this many commits succeeded (default 0)

import path from 'node:path';
import { CDF_CRASH_POINTS, CdfSync, runCdfSyncOnce, type CdfCrashPoint, type CdfSyncOptions } from './cdf-sync.ts';
import { openJobEntry } from './entry.ts';

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return value;
}

const crashAt = process.env.LAKETS_CDF_CRASH_AT || undefined;
if (crashAt !== undefined && !CDF_CRASH_POINTS.includes(crashAt as CdfCrashPoint)) {
  console.error(`LAKETS_CDF_CRASH_AT must be one of ${CDF_CRASH_POINTS.join(', ')}`);
  process.exit(2);
}

const { config, logger, db } = await openJobEntry();

const options: CdfSyncOptions = {
  url: db.directUrl,
  table: process.env.LAKETS_CDF_TABLE || 'stock_ticks',
  lakeDir: path.join(config.dataDir, 'lake'),
  batchMaxRows: intEnv('LAKETS_CDF_BATCH_ROWS', 100_000),
  batchMaxMs: intEnv('LAKETS_CDF_BATCH_MS', 10_000),
  checkpointInterval: intEnv('LAKETS_CDF_CHECKPOINT_EVERY', 10),
  statusIntervalMs: intEnv('LAKETS_CDF_STATUS_MS', 1_000),
  logger,
  ...(crashAt ? { crashAt: crashAt as CdfCrashPoint, crashAfterCommits: intEnv('LAKETS_CDF_CRASH_AFTER_COMMITS', 0) } : {}),
};

let exitCode = 0;
try {
  if (process.argv.includes('--once')) {
    const status = await runCdfSyncOnce(options);
    logger.info({ ...status, committedLsn: status.committedLsn.toString() }, 'cdf_sync caught up');
  } else {
    const sync = new CdfSync(options);
    const stopped = new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await Promise.race([sync.start(), stopped]);
    await stopped;
    await sync.stop();
    logger.info({ commits: sync.status.commits, rowsSynced: sync.status.rowsSynced }, 'cdf_sync stopped');
  }
} catch (err) {
  logger.error({ err: (err as Error).message }, 'cdf_sync failed');
  exitCode = 1;
} finally {
  await db.stop();
}
process.exit(exitCode);
