import { DEFAULT_RECENT_PARTITIONS, MAX_RECENT_PARTITIONS } from '../services/partitions.ts';
import type { PipelineStatus } from '../services/pipeline.ts';
import { watermarkOf } from '../services/watermarks.ts';
import { builder } from './builder.ts';
import { JobStatusRef } from './job-status.ts';
import { LakeStatusRef } from './lake-status.ts';
import { PartitionCountsRef } from './partition-counts.ts';
import { PartitionRef } from './partition.ts';
import { PriceRef } from './price.ts';
import { WatermarkRef } from './watermark.ts';

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
      resolve: (p) => p.rollups.map(watermarkOf),
    }),
    jobs: t.field({ type: [JobStatusRef], complexity: { field: 1, multiplier: 8 }, resolve: (p) => p.jobs }),
    lake: t.field({
      type: LakeStatusRef,
      nullable: true,
      description: 'The change-feed sync: rows synced to the lake, its state and slot lag.',
      resolve: (p) => p.lake ?? null,
    }),
    latestPrices: t.field({
      type: [PriceRef],
      description: 'The last value cache: latest price of every symbol.',
      complexity: { field: 100, multiplier: 100 },
      resolve: async (_p, _args, ctx) => ctx.services.prices.latest([...(await ctx.services.assets.all()).keys()]),
    }),
    recentPartitions: t.field({
      type: [PartitionRef],
      description: 'The newest chunks (any status) for the lifecycle strip, newest first.',
      args: { limit: t.arg.int({ required: false, defaultValue: DEFAULT_RECENT_PARTITIONS }) },
      complexity: (args) => {
        const n = Math.min(MAX_RECENT_PARTITIONS, Math.max(1, args.limit ?? DEFAULT_RECENT_PARTITIONS));
        return { field: n, multiplier: n };
      },
      resolve: (_p, args, ctx) => ctx.services.partitions.recent(args.limit ?? DEFAULT_RECENT_PARTITIONS, ctx.signal),
    }),
  }),
});

builder.queryField('pipeline', (t) =>
  t.field({
    type: PipelineRef,
    description: 'Every signal of the pipeline, computed in one round trip (shared by every client for up to a second).',
    complexity: 50,
    resolve: (_root, _args, ctx) => ctx.services.pipeline.read(),
  }),
);

builder.subscriptionField('pipelineUpdated', (t) =>
  t.field({
    type: PipelineRef,
    description: 'The pipeline signals at once, then about once a second.',
    complexity: 50,
    subscribe: (_root, _args, ctx) => ctx.services.pipeline.subscribe(),
    resolve: (status) => status,
  }),
);
