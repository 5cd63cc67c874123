import { Cron } from 'croner';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { runJobOnce, type Job, type JobOutcome } from './job.ts';

export interface ScheduledJob {
  job: Job;
  /** Seconds between runs, per profile (docs/ARCHITECTURE.md §8). */
  everySeconds: { demo: number; production: number };
}

export interface JobStatus {
  name: string;
  runs: number;
  failures: number;
  skipped: number;
  lastOutcome?: JobOutcome['status'];
  lastMs?: number;
  lastError?: string;
}

function cronPattern(seconds: number): string {
  if (seconds < 60) return `*/${seconds} * * * * *`;
  if (seconds % 3600 === 0) return `0 0 */${seconds / 3600} * * *`;
  return `0 */${Math.max(1, Math.round(seconds / 60))} * * * *`;
}

/**
 * Runs every job on its cadence in one process. A failing job is logged and retried on its next
 * tick without taking the others down; croner's `protect` stops a slow run from overlapping
 * itself in this process and the advisory lock in runJobOnce does so across processes.
 */
export class Scheduler {
  private readonly crons: Cron[] = [];
  private readonly running = new Set<Promise<unknown>>();
  readonly status = new Map<string, JobStatus>();
  private readonly listeners = new Set<(name: string, outcome: JobOutcome) => void>();

  constructor(
    private readonly url: string,
    private readonly config: Config,
    private readonly logger: Logger,
  ) {}

  onOutcome(listener: (name: string, outcome: JobOutcome) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async runNow(job: Job): Promise<JobOutcome> {
    const st = this.status.get(job.name) ?? { name: job.name, runs: 0, failures: 0, skipped: 0 };
    this.status.set(job.name, st);
    const run = runJobOnce(this.url, job, this.config, this.logger).catch(
      (error: Error): JobOutcome => ({ status: 'failed', error, ms: 0 }),
    );
    this.running.add(run);
    const outcome = await run;
    this.running.delete(run);
    st.runs += 1;
    st.lastOutcome = outcome.status;
    st.lastMs = outcome.ms;
    if (outcome.status === 'failed') {
      st.failures += 1;
      st.lastError = outcome.error.message;
      this.logger.error({ job: job.name, err: outcome.error.message }, 'job failed; retrying on its next run');
    } else if (outcome.status === 'skipped') {
      st.skipped += 1;
    } else {
      this.logger.debug({ job: job.name, ms: outcome.ms, ...outcome.result.detail }, 'job run');
    }
    for (const l of this.listeners) l(job.name, outcome);
    return outcome;
  }

  schedule(entry: ScheduledJob): void {
    const seconds = entry.everySeconds[this.config.profile];
    const cron = new Cron(cronPattern(seconds), { protect: true, name: entry.job.name }, async () => {
      await this.runNow(entry.job);
    });
    this.crons.push(cron);
  }

  async stop(): Promise<void> {
    for (const c of this.crons) c.stop();
    await Promise.allSettled([...this.running]);
  }
}
