import { sql } from 'kysely';
import { TICK_TABLE } from '../config.ts';
import type { Db } from '../db/pool.ts';
import type { Logger } from '../logger.ts';
import { CachedRead } from './cached-read.ts';
import { CoalescingFeed, type FeedSubscriber } from './coalescing-feed.ts';
import type { LatestQueue } from './latest-queue.ts';

/** The change-feed sync as lakets.pipeline_status() reports it (lakets.cdf_state and its replication slot). */
export interface LakeStatus {
  state: string;
  committedLsn: string | null;
  deltaVersion: number | null;
  rowsSynced: number;
  updatedAt: string | null;
  slotName: string | null;
  slotActive: boolean;
  slotRetainedBytes: number | null;
  slotLagBytes: number | null;
  error: string | null;
  /** Set once the lake was lost and rebuilt from the resident chunks: the history it no longer holds. */
  missingHistory?: MissingLakeHistory | null;
}

/** The rows of chunks dropped before the lake was lost: gone with it, reported, never refilled. */
export interface MissingLakeHistory {
  /** When the lake was last rebuilt. */
  rebuiltAt: string;
  chunks: number;
  rows: number;
  /** The time range the missing chunks covered (null when none is missing). */
  from: string | null;
  to: string | null;
}

/** The last run of a job, as lakets.pipeline_status() reports it. */
export interface JobStatus {
  job: string;
  lastStatus: string;
  lastStartedAt: string | null;
  lastFinishedAt: string | null;
  lastDurationMs: number | null;
  lastRowsAffected: number | null;
  lastError: string | null;
  failuresLastHour: number;
}

export interface PartitionCounts {
  active: number;
  tiered: number;
  dropped: number;
  residentRows: number;
  residentBytes: number;
  droppedRows: number;
}

/** The JSON of lakets.pipeline_status(): every signal of the pipeline in one read. */
export interface PipelineStatus {
  at: string;
  table: string;
  ticksLastMinute: number;
  defaultPartitionRows: number;
  chunkInterval: string;
  partitions: PartitionCounts;
  invalidationsPending: number;
  rollups: Array<{
    rollup: string;
    watermark: string | null;
    pendingInvalidations: number;
    lastRefreshAt: string | null;
    lastRefreshMs: number | null;
  }>;
  jobs: JobStatus[];
  /** Null when the table's change feed is not enabled. */
  lake: LakeStatus | null;
}

export async function readPipelineStatus(db: Db): Promise<PipelineStatus> {
  const { rows } = await sql<{ status: PipelineStatus }>`SELECT lakets.pipeline_status(${TICK_TABLE}) AS status`.execute(db);
  return rows[0]!.status;
}

/**
 * The pipeline signals: one shared read per interval for every reader (Query.pipeline, Query.lake),
 * and pipelineUpdated: while anyone subscribes, the signals are read once per interval and every
 * subscriber gets the same snapshot (latest wins for slow clients).
 */
export class PipelineFeed {
  private timer: NodeJS.Timeout | undefined;
  private due = false;
  private last: PipelineStatus | undefined;
  private readonly shared: CachedRead<PipelineStatus>;
  private readonly feed: CoalescingFeed<FeedSubscriber<PipelineStatus>, PipelineStatus>;

  constructor(
    private readonly db: Db,
    logger: Logger,
    private readonly intervalMs = 1000,
  ) {
    this.shared = new CachedRead(() => readPipelineStatus(this.db), intervalMs);
    this.feed = new CoalescingFeed<FeedSubscriber<PipelineStatus>, PipelineStatus>({
      name: 'pipeline',
      logger,
      pending: () => this.due,
      read: () => this.poll(),
      // The next period's read is the retry.
      readFailed: () => undefined,
      clear: () => (this.due = false),
      retryMs: intervalMs,
      idle: () => this.stopPolling(),
    });
  }

  /** The signals, read at most once per interval whatever the number of callers. */
  read(): Promise<PipelineStatus> {
    return this.shared.get();
  }

  /** The signals read now (for a reader with a cache of its own: /metrics). */
  readNow(): Promise<PipelineStatus> {
    return readPipelineStatus(this.db);
  }

  subscribe(): LatestQueue<PipelineStatus> {
    const { queue } = this.feed.subscribe((q) => ({ queue: q }));
    if (this.last) queue.push('pipeline', this.last);
    if (!this.timer) this.tick();
    return queue;
  }

  close(): void {
    this.stopPolling();
    this.feed.close();
  }

  private tick(): void {
    this.timer = setTimeout(() => this.tick(), this.intervalMs);
    this.due = true;
    this.feed.schedule();
  }

  private stopPolling(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async poll(): Promise<void> {
    this.due = false;
    const status = await readPipelineStatus(this.db);
    this.last = status;
    for (const s of this.feed.subscribers) s.queue.push('pipeline', status);
  }
}
