import pg from 'pg';
import type { Logger } from '../logger.ts';
import type { Config } from '../config.ts';
import { TickGenerator, nowMicros, type GeneratorOptions } from './generator.ts';
import { copyTicks, ensureSymbols, latestPrices } from './tick-table.ts';

export interface StreamOptions extends GeneratorOptions {
  /** Ticks per second. */
  rate: number;
  symbols: number;
  /** How often a COPY batch is sent. */
  batchIntervalMs?: number;
  /** Optional burst mode: every burstEveryMs a back-dated batch of burstSize ticks. */
  burstEveryMs?: number;
  burstSize?: number;
  table?: string;
}

export interface StreamStats {
  ticksWritten: number;
  batches: number;
  failures: number;
  lastError?: string;
  startedAt: Date;
}

/** The stream settings of a configuration (LAKETS_TICK_RATE, LAKETS_SYMBOLS, LAKETS_TICK_BURST). */
export function streamOptions(config: Pick<Config, 'tickRate' | 'symbols' | 'tickBurst'>): StreamOptions {
  return {
    rate: config.tickRate,
    symbols: config.symbols,
    ...(config.tickBurst > 0 ? { burstEveryMs: 60_000, burstSize: config.tickBurst } : {}),
  };
}

/**
 * stream_ticks: a continuous job writing synthetic ticks at a steady rate. It survives database
 * hiccups (a failed batch is logged and the next one retried on a fresh connection) and keeps
 * its schedule against the wall clock, catching up after a slow batch.
 */
export class TickStreamer {
  readonly stats: StreamStats = { ticksWritten: 0, batches: 0, failures: 0, startedAt: new Date() };
  private stopped = false;
  private loop: Promise<void> | undefined;
  private client: pg.Client | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly url: string,
    private readonly options: StreamOptions,
    private readonly logger: Logger,
  ) {}

  private runId: string | undefined;

  async start(): Promise<void> {
    const client = await this.connect();
    const specs = await ensureSymbols(client, this.options.symbols);
    const startPrices = this.options.startPrices ?? (await latestPrices(client, this.options.table));
    const generator = new TickGenerator(specs, { ...this.options, startPrices });
    // One lakets.job_runs row per streaming session, finished when the stream stops.
    const { rows } = await client.query<{ id: string }>(
      `INSERT INTO lakets.job_runs (job, detail) VALUES ('stream_ticks', $1) RETURNING id`,
      [JSON.stringify({ rate: this.options.rate, symbols: this.options.symbols })],
    );
    this.runId = rows[0]?.id;
    this.loop = this.run(generator);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
    try {
      const client = await this.connect();
      await client.query(
        `UPDATE lakets.job_runs SET finished_at = clock_timestamp(), status = 'succeeded', rows_affected = $2,
                detail = detail || $3::jsonb WHERE id = $1`,
        [this.runId, this.stats.ticksWritten, JSON.stringify({ batches: this.stats.batches, failures: this.stats.failures })],
      );
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'could not record the end of the stream_ticks run');
    }
    await this.disconnect();
  }

  private async disconnect(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch((error: Error) => this.logger.debug({ err: error.message }, 'closing the stream_ticks connection failed; it is gone either way'));
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const client = new pg.Client({ connectionString: this.url, application_name: 'lakets-stream-ticks' });
    // A connection lost while idle fails the next batch, which reconnects: nothing to do here.
    client.on('error', (error) => this.logger.debug({ err: error.message }, 'stream_ticks connection lost; the next batch reconnects'));
    await client.connect();
    this.client = client;
    return client;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private async run(generator: TickGenerator): Promise<void> {
    const interval = this.options.batchIntervalMs ?? 100;
    const rate = this.options.rate;
    let owed = 0; // ticks due but not yet written (fractional carry between batches)
    let last = Date.now();
    let lastBurst = Date.now();
    while (!this.stopped) {
      const now = Date.now();
      owed += ((now - last) / 1000) * rate;
      const span = BigInt(Math.max(1, now - last)) * 1000n;
      last = now;
      const count = Math.min(Math.floor(owed), Math.max(1, rate * 5)); // never more than 5 s at once
      owed -= count;
      let ticks = count > 0 ? generator.batch(count, nowMicros(), span) : [];
      if (this.options.burstEveryMs && this.options.burstSize && now - lastBurst >= this.options.burstEveryMs) {
        lastBurst = now;
        const backdated = generator.batch(this.options.burstSize, nowMicros() - 30_000_000n, 30_000_000n);
        ticks = ticks.concat(backdated);
      }
      if (ticks.length > 0) {
        try {
          await copyTicks(await this.connect(), ticks, this.options.table);
          this.stats.ticksWritten += ticks.length;
          this.stats.batches += 1;
        } catch (err) {
          this.stats.failures += 1;
          this.stats.lastError = (err as Error).message;
          if (this.stats.failures === 1 || this.stats.failures % 50 === 0) {
            this.logger.warn({ err: (err as Error).message, failures: this.stats.failures }, 'stream_ticks batch failed; retrying');
          }
          await this.disconnect();
          owed = 0; // do not replay a backlog after an outage: the feed resumes at the live rate
          await this.sleep(500);
          last = Date.now();
          continue;
        }
      }
      const elapsed = Date.now() - now;
      if (!this.stopped && elapsed < interval) await this.sleep(interval - elapsed);
    }
  }
}
