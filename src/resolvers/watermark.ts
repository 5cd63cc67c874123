import type { Watermark } from '../services/watermarks.ts';
import { builder } from './builder.ts';
import { GranularityEnum } from './candle.ts';

export const WatermarkRef = builder.objectRef<Watermark>('Watermark').implement({
  description: 'Progress of one rollup: buckets before its watermark are materialised unless an invalidation is pending.',
  fields: (t) => ({
    rollup: t.exposeString('rollup'),
    granularity: t.field({ type: GranularityEnum, nullable: true, resolve: (w) => w.granularity }),
    watermark: t.expose('watermark', { type: 'DateTime', nullable: true }),
    pendingInvalidations: t.exposeFloat('pendingInvalidations', { description: 'Rows of the invalidation log waiting for this rollup.' }),
    lastRefreshAt: t.expose('lastRefreshAt', { type: 'DateTime', nullable: true }),
    lastRefreshMs: t.exposeFloat('lastRefreshMs', { nullable: true }),
  }),
});

builder.queryField('watermarks', (t) =>
  t.field({
    type: [WatermarkRef],
    description: 'Every rollup in refresh order (minute, hour, day) with its watermark and pending work.',
    complexity: { field: 5, multiplier: 3 },
    resolve: (_root, _args, ctx) => ctx.services.watermarks.read(ctx.signal),
  }),
);
