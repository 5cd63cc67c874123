import { builder } from './builder.ts';
import { badInput } from './errors.ts';
import { quoteForMessage } from './assets.ts';
import { cancelWith } from './context.ts';
import type { ChunksTable } from '../db/tables.ts';
import type { Selectable } from 'kysely';

type ChunkRow = Selectable<ChunksTable>;

const PartitionStatus = builder.enumType('PartitionStatus', {
  description: 'Lifecycle of a chunk: active in Postgres, tiered (the lake provably holds it), dropped from Postgres.',
  values: { ACTIVE: { value: 'active' }, TIERED: { value: 'tiered' }, DROPPED: { value: 'dropped' } } as const,
});

export const PartitionRef = builder.objectRef<ChunkRow>('Partition').implement({
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

export const MAX_PARTITIONS = 1000;
const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

builder.queryField('partitions', (t) =>
  t.field({
    type: [PartitionRef],
    description: `Chunks of a ChronoTable, newest first (at most ${MAX_PARTITIONS}).`,
    args: {
      table: t.arg.string({ required: false, defaultValue: 'stock_ticks' }),
      status: t.arg({ type: PartitionStatus, required: false }),
      limit: t.arg.int({ required: false, defaultValue: 200 }),
    },
    complexity: (args) => {
      const n = Math.max(1, Math.min(MAX_PARTITIONS, args.limit ?? 200));
      return { field: n, multiplier: n };
    },
    resolve: async (_root, args, ctx) => {
      const table = args.table ?? 'stock_ticks';
      const limit = args.limit ?? 200;
      if (limit < 1 || limit > MAX_PARTITIONS) throw badInput(`limit must be between 1 and ${MAX_PARTITIONS}`, { argument: 'limit' });
      // A table name is a Postgres identifier; anything else (a NUL byte, a 1 MB string) is refused
      // here rather than by the database.
      if (!TABLE_NAME.test(table)) throw badInput(`${quoteForMessage(table)} is not a table name`, { argument: 'table' });
      const known = await ctx.db
        .selectFrom('lakets.chunks')
        .select('table_name')
        .where('table_name', '=', table)
        .limit(1)
        .executeTakeFirst(cancelWith(ctx));
      if (!known && table !== 'stock_ticks') throw badInput(`unknown table "${table}"`, { argument: 'table' });
      let query = ctx.db.selectFrom('lakets.chunks').selectAll().where('table_name', '=', table);
      if (args.status) query = query.where('status', '=', args.status);
      return query.orderBy('range_start', 'desc').orderBy('generation', 'desc').limit(limit).execute(cancelWith(ctx));
    },
  }),
);
