import type { Job } from './job.ts';

/** Refreshes every rollup in dependency order (minute → hour → day) from the invalidation log. */
export const rollupRefresh: Job = {
  name: 'rollup_refresh',
  async run({ client }) {
    const { rows } = await client.query<{ rollup: string; log_rows: string; buckets: string; rows_written: string; duration_ms: number; watermark: Date | null }>(
      'SELECT rollup, log_rows, buckets, rows_written, duration_ms, watermark FROM lakets.refresh_rollup_cascade()',
    );
    const buckets = rows.reduce((n, r) => n + Number(r.buckets), 0);
    return {
      rowsAffected: buckets,
      detail: {
        rollups: rows.map((r) => ({
          rollup: r.rollup,
          logRows: Number(r.log_rows),
          buckets: Number(r.buckets),
          rowsWritten: Number(r.rows_written),
          ms: r.duration_ms,
          watermark: r.watermark,
        })),
      },
    };
  },
};
