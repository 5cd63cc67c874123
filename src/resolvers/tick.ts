import { DEFAULT_TICK_LIMIT, encodeTickCursor, isoToMicros, MAX_TICK_LIMIT, MAX_TICK_WINDOW_DAYS, type RawTick } from '../services/ticks.ts';
import { builder } from './builder.ts';

const TickSource = builder.enumType('TickSource', {
  description: 'Where a tick was read from.',
  values: {
    POSTGRES: { value: 'postgres', description: 'A resident chunk.' },
    LAKE: { value: 'lake', description: 'The Delta Lake table: its chunk was dropped by retention.' },
  } as const,
});

const TickOrder = builder.enumType('TickOrder', {
  description: 'The order of a page of ticks, by (time, tickId).',
  values: {
    NEWEST_FIRST: { value: 'newest_first' },
    OLDEST_FIRST: { value: 'oldest_first' },
  } as const,
});

const TickRef = builder.objectRef<RawTick>('Tick').implement({
  description: 'One raw tick.',
  fields: (t) => ({
    id: t.id({ description: 'A stable key for normalised caches (the tick id).', resolve: (k) => `Tick:${k.tickId}` }),
    cursor: t.string({
      description: 'Where this tick stands in (time, tickId) order, opaque: pass the last tick\'s as `after` for the next page.',
      resolve: (k) => encodeTickCursor(k),
    }),
    symbol: t.exposeString('symbol'),
    time: t.field({ type: 'DateTime', description: 'Event time (milliseconds; see epochMicros for full precision).', resolve: (k) => new Date(Date.parse(k.time)) }),
    epochMicros: t.float({ description: 'Event time in microseconds since the Unix epoch (exact).', resolve: (k) => isoToMicros(k.time) }),
    price: t.exposeFloat('price'),
    volume: t.exposeFloat('volume'),
    tickId: t.exposeString('tickId'),
    source: t.field({ type: TickSource, resolve: (k) => k.source }),
  }),
});

builder.queryField('ticks', (t) =>
  t.field({
    type: [TickRef],
    description: [
      'Raw ticks of a symbol across both tiers (resident chunks from Postgres, dropped ones from the Delta Lake table, so history stays queryable after retention),',
      'ordered by (time, tickId). With from/to: [from, to), oldest first unless `order` says otherwise. Without them: newest first, over the 31 days before now',
      '(or before the cursor). `after`: the cursor of the last tick of the previous page; the page continues after it in the same order.',
      `At most ${MAX_TICK_LIMIT} ticks (limit, default ${DEFAULT_TICK_LIMIT}) and ${MAX_TICK_WINDOW_DAYS} days per request.`,
    ].join(' '),
    args: {
      symbol: t.arg.string({ required: true }),
      from: t.arg({ type: 'DateTime', required: false }),
      to: t.arg({ type: 'DateTime', required: false }),
      limit: t.arg.int({ required: false, defaultValue: DEFAULT_TICK_LIMIT }),
      order: t.arg({ type: TickOrder, required: false, description: 'Default: OLDEST_FIRST with from/to, NEWEST_FIRST without.' }),
      after: t.arg.string({ required: false, description: 'A tick cursor: continue after that tick.' }),
    },
    // Every tick it can return is read (from Postgres, or the lake for dropped chunks) and then
    // returned with the fields selected on it.
    complexity: (args) => {
      const limit = Math.max(1, Math.min(MAX_TICK_LIMIT, args.limit ?? DEFAULT_TICK_LIMIT));
      return { field: limit, multiplier: limit };
    },
    resolve: (_root, args, ctx) =>
      ctx.services.ticks.read(
        { symbol: args.symbol, from: args.from, to: args.to, limit: args.limit ?? DEFAULT_TICK_LIMIT, order: args.order, after: args.after },
        ctx.signal,
      ),
  }),
);
