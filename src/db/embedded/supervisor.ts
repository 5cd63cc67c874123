import fs from 'node:fs';
import path from 'node:path';
import { dataPaths } from '../../config.ts';
import { roleUrl } from './credentials.ts';
import type { DatabaseHealth } from '../database-health.ts';
import {
  launchPostmaster,
  prepareEmbeddedCluster,
  verifySuperuser,
  type EmbeddedCluster,
  type EmbeddedPostgresOptions,
  type Postmaster,
  type PostgresExit,
} from './postgres.ts';
import type { Logger } from '../../logger.ts';
import { killOrphanedBackends } from './processes.ts';

export interface SupervisorOptions extends EmbeddedPostgresOptions {
  logger: Logger;
  /** Restarts allowed within `windowMs` before giving up (default 3 within 60 s). */
  maxRestarts?: number;
  windowMs?: number;
}

/** Waits before the 1st, 2nd, 3rd restart of a window: quick after one crash, slower in a crash loop. */
const RESTART_DELAYS_MS = [250, 1_000, 3_000];

/**
 * Keeps the embedded Postgres running for `npm start`. When the postmaster dies (kill -9, OOM
 * killer, a crash) it is started again on the same data directory: Postgres's crash recovery
 * replays the WAL, and every client reconnects by itself (the API pool discards dead clients, the
 * LISTEN hub and the change-feed sync reconnect, jobs and the tick streamer open a connection per
 * run or batch). When it cannot be restarted (3 attempts within a minute, or the data directory is
 * gone) the supervisor reports one fatal error and the process exits.
 */
export class PostgresSupervisor {
  private postmaster: Postmaster | undefined;
  private state: DatabaseHealth['database'] = 'up';
  private reason: string | undefined;
  private restarts = 0;
  private attempts: number[] = [];
  private stopping: Promise<void> | undefined;
  private restarting: Promise<void> | undefined;
  private readonly fatalListeners = new Set<(error: Error) => void>();
  private fatalError: Error | undefined;

  private constructor(
    readonly cluster: EmbeddedCluster,
    private readonly options: SupervisorOptions,
  ) {}

  static async start(options: SupervisorOptions): Promise<PostgresSupervisor> {
    const cluster = await prepareEmbeddedCluster({
      ...options,
      onNotice: (message) => options.logger.warn({ dataDir: options.dataDir }, message),
    });
    const supervisor = new PostgresSupervisor(cluster, options);
    try {
      supervisor.watch(await launchPostmaster(cluster));
      await verifySuperuser(cluster);
    } catch (err) {
      await supervisor.stop();
      throw err;
    }
    return supervisor;
  }

  /** The superuser on database "postgres": start-up administration only. */
  get adminUrl(): string {
    return roleUrl(this.cluster.port, this.cluster.credentials.superuser, 'postgres');
  }

  get pid(): number | undefined {
    return this.postmaster?.pid;
  }

  health(): DatabaseHealth {
    return {
      ok: this.state === 'up',
      database: this.state,
      ...(this.reason ? { reason: this.reason } : {}),
      restarts: this.restarts,
    };
  }

  /** Called once when Postgres cannot be restarted (called at once if that already happened). */
  onFatal(listener: (error: Error) => void): void {
    if (this.fatalError) listener(this.fatalError);
    else this.fatalListeners.add(listener);
  }

  /** Fast shutdown of the postmaster; no restart after it. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.state !== 'failed') this.state = 'stopping';
      await this.restarting;
      await this.postmaster?.stop();
      if (this.state !== 'failed') this.state = 'stopped';
      await this.cluster.closeLog();
    })();
    return this.stopping;
  }

  private watch(postmaster: Postmaster): void {
    this.postmaster = postmaster;
    this.state = 'up';
    this.reason = undefined;
    void postmaster.exited.then((exit) => {
      if (this.stopping || this.postmaster !== postmaster) return;
      this.restarting = this.restart(exit);
    });
  }

  private async restart(exit: PostgresExit): Promise<void> {
    const { logger } = this.options;
    const how = exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
    this.state = 'restarting';
    this.reason = `Postgres exited unexpectedly (${how}); restarting`;
    logger.error({ pid: this.postmaster?.pid, exit: how, log: dataPaths(this.cluster.dataDir).postgresLog }, 'embedded Postgres exited unexpectedly; restarting it');
    const maxRestarts = this.options.maxRestarts ?? 3;
    const windowMs = this.options.windowMs ?? 60_000;
    let lastError = how;
    for (;;) {
      if (this.stopping) return;
      const now = Date.now();
      this.attempts = this.attempts.filter((t) => now - t < windowMs);
      if (!fs.existsSync(path.join(this.cluster.pgData, 'PG_VERSION'))) {
        return this.fail(`embedded Postgres stopped and cannot be restarted: its data directory ${this.cluster.pgData} is gone`);
      }
      if (this.attempts.length >= maxRestarts) {
        return this.fail(
          `embedded Postgres could not be restarted: ${maxRestarts} attempts within ${Math.round(windowMs / 1000)} s, the last: ${lastError} (see ${dataPaths(this.cluster.dataDir).postgresLog})`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, RESTART_DELAYS_MS[Math.min(this.attempts.length, RESTART_DELAYS_MS.length - 1)]));
      if (this.stopping) return;
      // Backends of the killed postmaster hold its shared memory: a new one refuses to start beside them.
      const orphans = await killOrphanedBackends(this.cluster.pgData);
      if (orphans > 0) logger.warn({ orphans }, 'ended backends the crashed postmaster left behind');
      this.attempts.push(Date.now());
      try {
        const postmaster = await launchPostmaster(this.cluster);
        this.restarts += 1;
        this.watch(postmaster);
        logger.warn({ pid: postmaster.pid, restarts: this.restarts }, 'embedded Postgres restarted after a crash (recovery done)');
        return;
      } catch (err) {
        lastError = (err as Error).message;
        this.reason = `restarting Postgres failed: ${lastError}`;
        logger.warn({ err: lastError, attempt: this.attempts.length }, 'embedded Postgres restart failed');
      }
    }
  }

  private fail(message: string): void {
    this.state = 'failed';
    this.reason = message;
    this.fatalError = new Error(message);
    for (const listener of this.fatalListeners) listener(this.fatalError);
    this.fatalListeners.clear();
  }
}
