// Runs the change-feed sync as its own process: `tsx jobs/cdf-sync-main.ts [--once]`.
// Streams until SIGINT/SIGTERM (or, with --once, until everything committed at start is in the lake).
// Its settings are npm start's (LAKETS_CDF_*, see the README's Configuration); the crash-injection
// ones (LAKETS_CDF_CRASH_AT, LAKETS_CDF_CRASH_AFTER_COMMITS) exist for the exactly-once tests.

import { CdfSync, runCdfSyncOnce, type CdfSyncOptions } from '../src/cdf/cdf-sync.ts';
import { openJobEntry } from './entry.ts';

const { config, logger, db } = await openJobEntry();

const options: CdfSyncOptions = {
  url: db.directUrl,
  lake: config.lake.store,
  retentionMs: config.lake.retentionMs,
  batchMaxRows: config.cdf.batchMaxRows,
  batchMaxMs: config.cdf.batchMaxMs,
  checkpointInterval: config.cdf.checkpointEvery,
  statusIntervalMs: config.cdf.statusIntervalMs,
  logger,
  ...(config.cdf.crashAt ? { crashAt: config.cdf.crashAt, crashAfterCommits: config.cdf.crashAfterCommits } : {}),
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
