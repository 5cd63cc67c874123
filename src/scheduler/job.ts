import pg from 'pg';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';

export interface JobContext {
  client: pg.Client;
  config: Config;
  logger: Logger;
}

export interface JobResult {
  rowsAffected?: number;
  detail?: Record<string, unknown>;
}

/** A scheduled job: a thin entry point that opens one connection and calls SQL (docs/ARCHITECTURE.md §8). */
export interface Job {
  name: string;
  run(ctx: JobContext): Promise<JobResult>;
}

export type JobOutcome =
  | { status: 'succeeded'; result: JobResult; ms: number }
  | { status: 'skipped'; ms: number }
  | { status: 'failed'; error: Error; ms: number };

/**
 * Runs a job once: one connection, an advisory lock so that overlapping runs (another scheduler,
 * a manual run) skip instead of racing, and a row in lakets.job_runs for every run.
 */
export async function runJobOnce(url: string, job: Job, config: Config, logger: Logger): Promise<JobOutcome> {
  const started = Date.now();
  // A server that accepts TCP but never answers (restarting, or something else on its port) must
  // not hold a run, and with it the scheduler's shutdown, forever.
  const client = new pg.Client({ connectionString: url, application_name: `lakets-job-${job.name}`, connectionTimeoutMillis: 10_000 });
  client.on('error', () => undefined); // surfaced by the failing query instead
  await client.connect();
  let runId: string | undefined;
  try {
    const { rows } = await client.query<{ locked: boolean }>(
      `SELECT pg_try_advisory_lock(hashtext('lakets.job'), hashtext($1)) AS locked`,
      [job.name],
    );
    if (!rows[0]?.locked) {
      await client.query(
        `INSERT INTO lakets.job_runs (job, finished_at, status, detail)
         VALUES ($1, clock_timestamp(), 'skipped', '{"reason":"previous run still in progress"}')`,
        [job.name],
      );
      return { status: 'skipped', ms: Date.now() - started };
    }
    const inserted = await client.query<{ id: string }>(`INSERT INTO lakets.job_runs (job) VALUES ($1) RETURNING id`, [job.name]);
    runId = inserted.rows[0]?.id;
    try {
      const result = await job.run({ client, config, logger });
      await client.query(
        `UPDATE lakets.job_runs SET finished_at = clock_timestamp(), status = 'succeeded', rows_affected = $2, detail = $3 WHERE id = $1`,
        [runId, result.rowsAffected ?? null, JSON.stringify(result.detail ?? {})],
      );
      return { status: 'succeeded', result, ms: Date.now() - started };
    } catch (err) {
      const error = err as Error;
      await client
        .query(`UPDATE lakets.job_runs SET finished_at = clock_timestamp(), status = 'failed', detail = $2 WHERE id = $1`, [
          runId,
          JSON.stringify({ error: error.message }),
        ])
        .catch((recordError: Error) =>
          logger.warn({ job: job.name, err: recordError.message }, 'could not record the failed run in lakets.job_runs; it stays "running" there'),
        );
      return { status: 'failed', error, ms: Date.now() - started };
    }
  } finally {
    await client.end().catch((error: Error) => logger.debug({ job: job.name, err: error.message }, 'closing a job connection failed; it is gone either way'));
  }
}
