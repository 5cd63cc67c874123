import type { Job } from '../scheduler/job.ts';

interface CascadeRow {
  rollup: string;
  log_rows: string;
  buckets: string;
  rows_written: string;
  duration_ms: number;
  watermark: Date | null;
  failed_buckets: string;
  deferred_buckets: string;
  error: string | null;
  closed_buckets: string;
  watermark_held: boolean;
}

/** Failing buckets listed in a run's detail; the full list is lakets.rollup_failed_buckets. */
const LISTED_FAILURES = 10;

/**
 * Refreshes every rollup in dependency order (minute → hour → day): materialises the buckets that
 * closed since the last run and recomputes the closed buckets written again (the invalidation
 * log). A bucket whose recomputation fails does not fail the run: it stays pending (read live,
 * exactly), is retried on every run, and is reported here and in lakets.rollup_failed_buckets. A
 * watermark held back (writers older than the run still open past the wait bound) is reported
 * too: the next run moves it.
 */
export const rollupRefresh: Job = {
  name: 'rollup_refresh',
  async run({ client, logger }) {
    const { rows } = await client.query<CascadeRow>(
      `SELECT rollup, log_rows, buckets, rows_written, duration_ms, watermark, failed_buckets, deferred_buckets, error,
              closed_buckets, watermark_held
         FROM lakets.refresh_rollup_cascade()`,
    );
    const buckets = rows.reduce((n, r) => n + Number(r.buckets) + Number(r.closed_buckets), 0);
    const failedBuckets = rows.reduce((n, r) => n + Number(r.failed_buckets), 0);
    const detail: Record<string, unknown> = {
      rollups: rows.map((r) => ({
        rollup: r.rollup,
        logRows: Number(r.log_rows),
        buckets: Number(r.buckets),
        closedBuckets: Number(r.closed_buckets),
        rowsWritten: Number(r.rows_written),
        ms: r.duration_ms,
        watermark: r.watermark,
        ...(Number(r.failed_buckets) > 0 ? { failedBuckets: Number(r.failed_buckets) } : {}),
        ...(Number(r.deferred_buckets) > 0 ? { deferredBuckets: Number(r.deferred_buckets) } : {}),
        ...(r.error ? { error: r.error } : {}),
        ...(r.watermark_held ? { watermarkHeld: true } : {}),
      })),
    };
    const held = rows.filter((r) => r.watermark_held).map((r) => r.rollup);
    if (held.length > 0) {
      logger.warn(
        { rollups: held },
        'rollup_refresh: writers older than this run were still open after the wait; the watermark stays until the next run',
      );
    }
    if (failedBuckets > 0 || rows.some((r) => r.error)) {
      const { rows: failures } = await client.query<{ rollup: string; key: string; bucket: Date; error: string; attempts: number }>(
        `SELECT rollup, key, bucket, error, attempts FROM lakets.rollup_failed_buckets
          ORDER BY last_failed_at DESC, rollup, key, bucket LIMIT $1`,
        [LISTED_FAILURES],
      );
      detail.failedBuckets = failedBuckets;
      detail.failures = failures;
      logger.warn(
        { failedBuckets, rollupErrors: rows.filter((r) => r.error).map((r) => `${r.rollup}: ${r.error}`) },
        'rollup_refresh: some buckets could not be refreshed; they stay pending and are retried on the next run',
      );
    }
    return { rowsAffected: buckets, detail };
  },
};
