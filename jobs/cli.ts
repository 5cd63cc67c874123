import { openJobEntry } from './entry.ts';
import { runJobOnce } from '../src/scheduler/job.ts';
import { JOBS } from '../src/lifecycle/scheduled-jobs.ts';
import { TickStreamer, streamOptions } from '../src/ticks/streamer.ts';

/**
 * npm run jobs -- <name> [--seconds N]
 * Runs one job once against DATABASE_URL (or the embedded Postgres of LAKETS_DATA_DIR, joining
 * it when `npm start` already runs it) and exits non-zero on failure. stream_ticks streams until
 * Ctrl-C, or for --seconds N.
 */
const [name, ...rest] = process.argv.slice(2);
const names = [...Object.keys(JOBS), 'stream_ticks'];
if (!name || !names.includes(name)) {
  console.error(`usage: npm run jobs -- <${names.join('|')}> [--seconds N]`);
  process.exit(2);
}

const { config, logger, db } = await openJobEntry();

let exitCode = 0;
try {
  if (name === 'stream_ticks') {
    const secondsIdx = rest.indexOf('--seconds');
    const seconds = secondsIdx >= 0 ? Number(rest[secondsIdx + 1]) : undefined;
    const streamer = new TickStreamer(db.url, streamOptions({ ...config, tickRate: config.tickRate || 1000 }), logger);
    await streamer.start();
    logger.info({ rate: config.tickRate || 1000, symbols: config.symbols }, 'stream_ticks running (Ctrl-C stops)');
    await new Promise<void>((resolve) => {
      if (seconds && seconds > 0) setTimeout(resolve, seconds * 1000);
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    await streamer.stop();
    logger.info({ ticks: streamer.stats.ticksWritten, failures: streamer.stats.failures }, 'stream_ticks stopped');
  } else {
    const outcome = await runJobOnce(db.url, JOBS[name]!, config, logger);
    if (outcome.status === 'failed') {
      logger.error({ job: name, err: outcome.error.message }, 'job failed');
      exitCode = 1;
    } else {
      logger.info({ job: name, status: outcome.status, ms: outcome.ms, ...(outcome.status === 'succeeded' ? outcome.result.detail : {}) }, 'job finished');
    }
  }
} finally {
  await db.stop();
}
process.exit(exitCode);
