import { GraphQLError } from 'graphql';
import type { DuckDBConnection } from '@duckdb/node-api';
import { withDuckDBConnection } from './duckdb.ts';

export interface LakeReadGateOptions {
  /** Reads running at once. */
  concurrency: number;
  /** Reads waiting for a turn; one more is refused at once. */
  maxQueued: number;
  /** Longest one read may run before DuckDB is interrupted. */
  timeoutMs: number;
}

export const DEFAULT_LAKE_READ_GATE: LakeReadGateOptions = { concurrency: 1, maxQueued: 8, timeoutMs: 10_000 };

/**
 * Client reads of the lake (DuckDB) take turns. DuckDB's node API runs each statement on libuv's
 * small thread pool (4 threads by default), which the change-feed sync's own DuckDB writes and
 * every asynchronous file operation of the process share: twenty concurrent reads would occupy
 * it and stall the sync. Here at most `concurrency` reads run, a few more wait, the rest are
 * refused with LAKE_BUSY; a read that runs too long, or whose client went away, is interrupted.
 */
export class LakeReadGate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly options: LakeReadGateOptions = DEFAULT_LAKE_READ_GATE) {}

  get running(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  async run<T>(signal: AbortSignal | undefined, work: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
    signal?.throwIfAborted();
    await this.acquire(signal);
    try {
      signal?.throwIfAborted();
      return await withDuckDBConnection(async (connection) => {
        let timedOut = false;
        const timer = setTimeout(() => {
          timedOut = true;
          connection.interrupt();
        }, this.options.timeoutMs);
        const onAbort = () => connection.interrupt();
        signal?.addEventListener('abort', onAbort, { once: true });
        try {
          return await work(connection);
        } catch (err) {
          if (timedOut) {
            throw new GraphQLError(`the lake read took longer than ${this.options.timeoutMs} ms and was stopped; narrow from/to`, {
              extensions: { code: 'LAKE_TIMEOUT' },
            });
          }
          throw err;
        } finally {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
        }
      });
    } finally {
      this.release();
    }
  }

  private acquire(signal: AbortSignal | undefined): Promise<void> {
    if (this.active < this.options.concurrency) {
      this.active++;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.options.maxQueued) {
      return Promise.reject(
        new GraphQLError('the lake is busy with other reads; retry shortly', { extensions: { code: 'LAKE_BUSY', retryAfterSeconds: 1 } }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const turn = () => {
        signal?.removeEventListener('abort', onAbort);
        this.active++;
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(turn);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal!.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(turn);
    });
  }

  private release(): void {
    this.active--;
    const next = this.waiting.shift();
    if (next) next();
  }
}
