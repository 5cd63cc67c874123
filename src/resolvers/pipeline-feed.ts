import { sql } from 'kysely';
import type { Db } from '../db/pool.ts';
import { LatestQueue } from '../server/latest-queue.ts';
import type { Logger } from '../logger.ts';
import { CachedRead } from '../server/cached-read.ts';

/** The JSON of lakets.pipeline_status() (src/sql/020_pipeline.sql and later redefinitions). */
export interface PipelineStatus {
  at: string;
  table: string;
  ticksLastMinute: number;
  defaultPartitionRows: number;
  chunkInterval: string;
  partitions: { active: number; tiered: number; dropped: number; residentRows: number; residentBytes: number; droppedRows: number };
  invalidationsPending: number;
  rollups: Array<{
    rollup: string;
    watermark: string | null;
    pendingInvalidations: number;
    lastRefreshAt: string | null;
    lastRefreshMs: number | null;
  }>;
  jobs: Array<{
    job: string;
    lastStatus: string;
    lastStartedAt: string | null;
    lastFinishedAt: string | null;
    lastDurationMs: number | null;
    lastRowsAffected: number | null;
    lastError: string | null;
    failuresLastHour: number;
  }>;
  [more: string]: unknown;
}

export async function readPipelineStatus(db: Db): Promise<PipelineStatus> {
  const { rows } = await sql<{ status: PipelineStatus }>`SELECT lakets.pipeline_status() AS status`.execute(db);
  return rows[0]!.status;
}

/**
 * One poller per process for pipelineUpdated: while anyone subscribes, the signals are read once
 * per interval and every subscriber gets the same snapshot (latest wins for slow clients).
 */
export class PipelineFeed {
  private readonly subscribers = new Set<LatestQueue<PipelineStatus>>();
  private timer: NodeJS.Timeout | undefined;
  private last: PipelineStatus | undefined;
  /** Query.pipeline and Query.lake: one pipeline_status() per interval whatever the number of clients. */
  private readonly shared: CachedRead<PipelineStatus>;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly intervalMs = 1000,
  ) {
    this.shared = new CachedRead(() => readPipelineStatus(this.db), intervalMs);
  }

  read(): Promise<PipelineStatus> {
    return this.shared.get();
  }

  subscribe(): LatestQueue<PipelineStatus> {
    const queue: LatestQueue<PipelineStatus> = new LatestQueue(() => {
      this.subscribers.delete(queue);
      if (this.subscribers.size === 0) this.stopPolling();
    });
    this.subscribers.add(queue);
    if (this.last) queue.push('pipeline', this.last);
    if (!this.timer) this.poll();
    return queue;
  }

  close(): void {
    this.stopPolling();
    for (const q of this.subscribers) q.close();
  }

  private stopPolling(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private poll(): void {
    this.timer = setTimeout(() => this.poll(), this.intervalMs);
    void readPipelineStatus(this.db).then(
      (status) => {
        this.last = status;
        for (const q of this.subscribers) q.push('pipeline', status);
      },
      (err: Error) => this.logger.warn({ err: err.message }, 'pipeline status read failed'),
    );
  }
}
