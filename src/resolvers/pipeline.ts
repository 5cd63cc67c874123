import { builder } from './builder.ts';
import { PriceRef } from './prices.ts';
import { PartitionRef } from './partitions.ts';
import type { PipelineStatus } from './pipeline-feed.ts';
import { WatermarkRef, granularityOfRollup } from './candles.ts';
import { LakeStatusRef, lakeOf } from './lake.ts';
import { publicFailure } from './public-errors.ts';
import { cancelWith } from './context.ts';

type JobStatus = PipelineStatus['jobs'][number];
type PartitionCounts = PipelineStatus['partitions'];

const JobStatusRef = builder.objectRef<JobStatus>('JobStatus').implement({
  description: 'The last run of a scheduled job (from lakets.job_runs).',
  fields: (t) => ({
    job: t.exposeString('job'),
    lastStatus: t.exposeString('lastStatus', { description: 'running, succeeded or failed' }),
    lastStartedAt: t.field({ type: 'DateTime', nullable: true, resolve: (j) => j.lastStartedAt }),
    lastFinishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (j) => j.lastFinishedAt }),
    lastDurationMs: t.float({ nullable: true, resolve: (j) => j.lastDurationMs }),
    lastRowsAffected: t.float({ nullable: true, resolve: (j) => j.lastRowsAffected }),
    lastError: t.string({
      nullable: true,
      description: 'Why the last run failed, as a kind ("failed: timed out (details in the server log)"); the message itself is logged by the server.',
      resolve: (j) => publicFailure(j.lastError),
    }),
    failuresLastHour: t.int({ resolve: (j) => j.failuresLastHour }),
  }),
});

const PartitionCountsRef = builder.objectRef<PartitionCounts>('PartitionCounts').implement({
  description: 'Chunks by lifecycle status, and the rows and bytes still resident in Postgres.',
  fields: (t) => ({
    active: t.int({ resolve: (p) => p.active }),
    tiered: t.int({ resolve: (p) => p.tiered }),
    dropped: t.int({ resolve: (p) => p.dropped }),
    residentRows: t.float({ resolve: (p) => p.residentRows }),
    residentBytes: t.float({ resolve: (p) => p.residentBytes }),
    droppedRows: t.float({ resolve: (p) => p.droppedRows }),
  }),
});

export const PipelineRef = builder.objectRef<PipelineStatus>('Pipeline').implement({
  description: 'Every signal of the pipeline in one read (lakets.pipeline_status()).',
  fields: (t) => ({
    at: t.field({ type: 'DateTime', resolve: (p) => p.at }),
    ticksLastMinute: t.float({ description: 'Ticks whose time falls in the last minute (stream_ticks).', resolve: (p) => p.ticksLastMinute }),
    defaultPartitionRows: t.float({
      description: 'Rows waiting in the default partition for the partition manager (should stay near zero).',
      resolve: (p) => p.defaultPartitionRows,
    }),
    chunkInterval: t.string({ resolve: (p) => p.chunkInterval }),
    partitions: t.field({ type: PartitionCountsRef, resolve: (p) => p.partitions }),
    invalidationsPending: t.float({
      description: 'Rows in the rollup invalidation log: the write triggers fill it, rollup_refresh drains it.',
      resolve: (p) => p.invalidationsPending,
    }),
    watermarks: t.field({
      type: [WatermarkRef],
      description: 'Every rollup in refresh order with its watermark (advanced by rollup_refresh).',
      resolve: (p) =>
        p.rollups.map((r) => ({
          rollup: r.rollup,
          granularity: granularityOfRollup(r.rollup),
          watermark: r.watermark ? new Date(r.watermark) : null,
          pendingInvalidations: r.pendingInvalidations,
          lastRefreshAt: r.lastRefreshAt ? new Date(r.lastRefreshAt) : null,
          lastRefreshMs: r.lastRefreshMs,
        })),
    }),
    jobs: t.field({ type: [JobStatusRef], complexity: { field: 1, multiplier: 8 }, resolve: (p) => p.jobs }),
    lake: t.field({
      type: LakeStatusRef,
      nullable: true,
      description: 'The change-feed sync: rows synced to the lake, its state and slot lag.',
      resolve: (p) => lakeOf(p),
    }),
    latestPrices: t.field({
      type: [PriceRef],
      description: 'The last value cache: latest price of every symbol.',
      complexity: { field: 100, multiplier: 100 },
      resolve: async (_p, _args, ctx) => ctx.prices.latest([...(await ctx.assets.all()).keys()]),
    }),
    recentPartitions: t.field({
      type: [PartitionRef],
      description: 'The newest chunks (any status) for the lifecycle strip, newest first.',
      args: { limit: t.arg.int({ required: false, defaultValue: 30 }) },
      complexity: (args) => {
        const n = Math.min(200, Math.max(1, args.limit ?? 30));
        return { field: n, multiplier: n };
      },
      resolve: (_p, args, ctx) =>
        ctx.db
          .selectFrom('lakets.chunks')
          .selectAll()
          .where('table_name', '=', 'stock_ticks')
          .where('range_start', '<=', new Date())
          .orderBy('range_start', 'desc')
          .orderBy('generation', 'desc')
          .limit(Math.min(200, Math.max(1, args.limit ?? 30)))
          .execute(cancelWith(ctx)),
    }),
  }),
});

builder.queryField('pipeline', (t) =>
  t.field({
    type: PipelineRef,
    description: 'Every signal of the pipeline, computed in one round trip (shared by every client for up to a second).',
    complexity: 50,
    resolve: (_root, _args, ctx) => ctx.pipeline.read(),
  }),
);

builder.subscriptionField('pipelineUpdated', (t) =>
  t.field({
    type: PipelineRef,
    description: 'The pipeline signals at once, then about once a second.',
    complexity: 50,
    subscribe: (_root, _args, ctx) => ctx.pipeline.subscribe(),
    resolve: (status) => status,
  }),
);
