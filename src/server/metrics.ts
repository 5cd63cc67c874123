import type http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PipelineStatus } from '../services/pipeline.ts';
import type { Logger } from '../logger.ts';
import { CachedRead } from '../services/cached-read.ts';

/** How long a scrape's pipeline figures are reused: one pipeline_status() per period whatever the number of scrapers. */
export const METRICS_CACHE_MS = 5_000;

export interface JobObservation {
  job: string;
  status: 'succeeded' | 'failed' | 'skipped';
  ms: number;
}

/**
 * /metrics in Prometheus text format: the pipeline signals (read from lakets.pipeline_status(), so
 * they are the database's truth, at most METRICS_CACHE_MS old; concurrent scrapes share one read)
 * plus the job runs of this process. The text itself is rendered at most once per period too.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly ticksLastMinute = new Gauge({ name: 'lakets_ticks_last_minute', help: 'Ticks whose time is in the last minute', registers: [this.registry] });
  private readonly partitions = new Gauge({ name: 'lakets_partitions', help: 'Chunks by lifecycle status', labelNames: ['status'], registers: [this.registry] });
  private readonly defaultRows = new Gauge({ name: 'lakets_default_partition_rows', help: 'Rows waiting in the default partition', registers: [this.registry] });
  private readonly residentRows = new Gauge({ name: 'lakets_resident_rows', help: 'Rows in resident (not dropped) chunks', registers: [this.registry] });
  private readonly residentBytes = new Gauge({ name: 'lakets_resident_bytes', help: 'Bytes of resident chunks', registers: [this.registry] });
  private readonly invalidations = new Gauge({ name: 'lakets_invalidations_pending', help: 'Rows in the rollup invalidation log', registers: [this.registry] });
  private readonly watermarkLag = new Gauge({ name: 'lakets_rollup_watermark_lag_seconds', help: 'now() minus the rollup watermark', labelNames: ['rollup'], registers: [this.registry] });
  private readonly lakeRows = new Gauge({ name: 'lakets_lake_rows_synced', help: 'Change events written to the lake', registers: [this.registry] });
  private readonly lakeStreaming = new Gauge({ name: 'lakets_lake_streaming', help: '1 while the change-feed sync is STREAMING', registers: [this.registry] });
  private readonly slotRetained = new Gauge({ name: 'lakets_slot_retained_wal_bytes', help: 'WAL held back by the replication slot', registers: [this.registry] });
  private readonly slotLag = new Gauge({ name: 'lakets_slot_lag_bytes', help: 'Server WAL position minus the slot confirmed position', registers: [this.registry] });
  private readonly jobLastDuration = new Gauge({ name: 'lakets_job_last_duration_seconds', help: 'Duration of the last run of each job (any process)', labelNames: ['job'], registers: [this.registry] });
  private readonly jobFailuresHour = new Gauge({ name: 'lakets_job_failures_last_hour', help: 'Failed runs of each job in the last hour (any process)', labelNames: ['job'], registers: [this.registry] });
  private readonly jobRuns = new Counter({ name: 'lakets_job_runs_total', help: 'Job runs of this process', labelNames: ['job', 'status'], registers: [this.registry] });
  private readonly jobDuration = new Histogram({
    name: 'lakets_job_duration_seconds',
    help: 'Job run durations in this process',
    labelNames: ['job'],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  private readonly status: CachedRead<PipelineStatus>;
  /** The rendered text, shared like the status: one render per period whatever the number of scrapers. */
  private readonly text: CachedRead<string>;

  constructor(
    readStatus: () => Promise<PipelineStatus>,
    private readonly logger: Logger,
    cacheMs = METRICS_CACHE_MS,
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: 'lakets_process_' });
    this.status = new CachedRead(readStatus, cacheMs);
    this.text = new CachedRead(() => this.renderNow(), cacheMs);
  }

  observeJob(o: JobObservation): void {
    this.jobRuns.inc({ job: o.job, status: o.status });
    if (o.status !== 'skipped') this.jobDuration.observe({ job: o.job }, o.ms / 1000);
  }

  readonly handler: http.RequestListener = (_req, res) => {
    void this.render().then(
      (body) => {
        res.writeHead(200, { 'content-type': this.registry.contentType });
        res.end(body);
      },
      (err: Error) => {
        this.logger.warn({ err: err.message }, 'metrics scrape failed');
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('metrics unavailable: database not reachable\n');
      },
    );
  };

  /** The exposition text, at most one cache period old (prom-client renders every metric each time: too much to do per scrape). */
  render(): Promise<string> {
    return this.text.get();
  }

  private async renderNow(): Promise<string> {
    const s = await this.status.get();
    this.ticksLastMinute.set(s.ticksLastMinute);
    for (const status of ['active', 'tiered', 'dropped'] as const) this.partitions.set({ status }, s.partitions[status]);
    this.defaultRows.set(s.defaultPartitionRows);
    this.residentRows.set(s.partitions.residentRows);
    this.residentBytes.set(s.partitions.residentBytes);
    this.invalidations.set(s.invalidationsPending);
    const lake = s.lake;
    if (lake) {
      this.lakeRows.set(lake.rowsSynced);
      this.lakeStreaming.set(lake.state === 'STREAMING' ? 1 : 0);
      if (lake.slotRetainedBytes !== null) this.slotRetained.set(lake.slotRetainedBytes);
      if (lake.slotLagBytes !== null) this.slotLag.set(lake.slotLagBytes);
    }
    for (const r of s.rollups) {
      if (r.watermark) this.watermarkLag.set({ rollup: r.rollup }, (Date.parse(s.at) - Date.parse(r.watermark)) / 1000);
    }
    for (const j of s.jobs) {
      if (j.lastDurationMs !== null) this.jobLastDuration.set({ job: j.job }, j.lastDurationMs / 1000);
      this.jobFailuresHour.set({ job: j.job }, j.failuresLastHour);
    }
    return this.registry.metrics();
  }
}
