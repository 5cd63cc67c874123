import type pg from 'pg';
import type { Logger } from '../logger.ts';
import { parseLsn } from '../lake/lsn.ts';

/**
 * Running-transactions records in the WAL. A logical slot's restart_lsn only moves past such records
 * (Postgres logs one every 15 s of activity, and at checkpoints): without one after a busy stretch, a
 * restart decodes all of that WAL again before it sends anything new. Optional: without the
 * privilege for pg_log_standby_snapshot() the slot advances at Postgres's own pace.
 */
export class RestartPoints {
  /** pg_log_standby_snapshot() is callable (it needs a superuser or an EXECUTE grant). */
  private callable = true;

  constructor(private readonly log: Logger | undefined) {}

  get available(): boolean {
    return this.callable;
  }

  /** Writes one; after a refusal, never tries again in this process. */
  async write(client: pg.ClientBase): Promise<void> {
    if (!this.callable) return;
    try {
      await client.query('SELECT pg_log_standby_snapshot()');
    } catch (error) {
      this.callable = false;
      this.log?.debug({ err: (error as Error).message }, 'cdf_sync: pg_log_standby_snapshot() unavailable; the slot advances at the server’s pace');
    }
  }

  /** Writes one and returns its WAL position (the caller waits for the slot to pass it). */
  async writeAndLocate(client: pg.ClientBase): Promise<bigint> {
    const { rows } = await client.query<{ lsn: string }>('SELECT pg_log_standby_snapshot()::text AS lsn');
    return parseLsn(rows[0]?.lsn as string);
  }
}
