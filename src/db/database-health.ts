import pg from 'pg';

/**
 * What /health says about the database: `ok` decides 200 or 503, the rest tells the operator why.
 * For the embedded Postgres the supervisor knows (up, restarting after a crash, failed); for an
 * external server (DATABASE_URL) a probe connects every few seconds.
 */
// A type rather than an interface: it must fit an HTTP handler's `Record<string, unknown>`.
export type DatabaseHealth = {
  ok: boolean;
  database: 'up' | 'restarting' | 'failed' | 'stopping' | 'stopped' | 'unreachable';
  reason?: string;
  /** Restarts of the embedded Postgres after a crash since start-up. */
  restarts?: number;
};

const PROBE_INTERVAL_MS = 5_000;
const PROBE_TIMEOUT_MS = 3_000;

/**
 * Probes an external server with a fresh connection every 5 s (one at a time, 3 s at most), so a
 * /health request never queries the database itself: polling it costs nothing, however often.
 */
export class DatabaseProbe {
  private current: DatabaseHealth = { ok: true, database: 'up' };
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(private readonly url: string) {}

  start(): this {
    this.timer = setInterval(() => void this.probe(), PROBE_INTERVAL_MS);
    this.timer.unref();
    return this;
  }

  health(): DatabaseHealth {
    return this.current;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  async probe(): Promise<DatabaseHealth> {
    if (this.running) return this.current;
    this.running = true;
    const client = new pg.Client({
      connectionString: this.url,
      application_name: 'lakets-health',
      connectionTimeoutMillis: PROBE_TIMEOUT_MS,
      query_timeout: PROBE_TIMEOUT_MS,
    });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      this.current = { ok: true, database: 'up' };
    } catch (err) {
      this.current = { ok: false, database: 'unreachable', reason: (err as Error).message };
    } finally {
      this.running = false;
      await client.end().catch(() => undefined);
    }
    return this.current;
  }
}
