import { TICK_TABLE } from '../config.ts';
import { DEFAULT_PARTITIONS, MAX_PARTITIONS, type Partition } from '../services/partitions.ts';
import { builder } from './builder.ts';

const PartitionStatus = builder.enumType('PartitionStatus', {
  description: 'Lifecycle of a chunk: active in Postgres, tiered (the lake provably holds it), dropped from Postgres.',
  values: { ACTIVE: { value: 'active' }, TIERED: { value: 'tiered' }, DROPPED: { value: 'dropped' } } as const,
});

export const PartitionRef = builder.objectRef<Partition>('Partition').implement({
  description: 'A time partition (chunk) of a ChronoTable.',
  fields: (t) => ({
    name: t.exposeString('chunk_name'),
    table: t.exposeString('table_name'),
    generation: t.exposeInt('generation', { description: 'Re-created ranges (late rows after a drop) get a new generation.' }),
    rangeStart: t.expose('range_start', { type: 'DateTime' }),
    rangeEnd: t.expose('range_end', { type: 'DateTime' }),
    status: t.field({ type: PartitionStatus, resolve: (c) => c.status }),
    rowCount: t.float({ resolve: (c) => Number(c.row_count) }),
    sizeBytes: t.float({ resolve: (c) => Number(c.size_bytes) }),
    lastWriteLsn: t.exposeString('last_write_lsn', { nullable: true }),
    lastWriteAt: t.expose('last_write_at', { type: 'DateTime', nullable: true }),
    createdAt: t.expose('created_at', { type: 'DateTime' }),
    tieredAt: t.expose('tiered_at', { type: 'DateTime', nullable: true }),
    droppedAt: t.expose('dropped_at', { type: 'DateTime', nullable: true }),
  }),
});

builder.queryField('partitions', (t) =>
  t.field({
    type: [PartitionRef],
    description: `Chunks of a ChronoTable, newest first (at most ${MAX_PARTITIONS}).`,
    args: {
      table: t.arg.string({ required: false, defaultValue: TICK_TABLE }),
      status: t.arg({ type: PartitionStatus, required: false }),
      limit: t.arg.int({ required: false, defaultValue: DEFAULT_PARTITIONS }),
    },
    complexity: (args) => {
      const n = Math.max(1, Math.min(MAX_PARTITIONS, args.limit ?? DEFAULT_PARTITIONS));
      return { field: n, multiplier: n };
    },
    resolve: (_root, args, ctx) =>
      ctx.services.partitions.list({ table: args.table ?? TICK_TABLE, status: args.status, limit: args.limit ?? DEFAULT_PARTITIONS }, ctx.signal),
  }),
);
