import { sql, type AbortableQueryOptions } from 'kysely';
import type { Db } from '../db/pool.ts';
import { builder } from './builder.ts';
import { badInput } from './errors.ts';
import { readCandles, type Candle } from './candle-feed.ts';
import { BUCKET_MS, bucketStart, type Granularity } from './granularity.ts';
import { cancelWith } from './context.ts';

export const DEFAULT_CANDLE_LIMIT = 500;
export const MAX_CANDLE_LIMIT = 5000;
/** The widest window one request may span, in buckets of its granularity. */
export const MAX_WINDOW_BUCKETS = 10_000;

export const GranularityEnum = builder.enumType('Granularity', {
  description: 'Candle width: one rollup per granularity (ohlcv_1min, ohlcv_1hour, ohlcv_1day).',
  values: { MINUTE: { value: 'minute' }, HOUR: { value: 'hour' }, DAY: { value: 'day' } } as const,
});

const FillEnum = builder.enumType('Fill', {
  description: 'How buckets without ticks are returned.',
  values: {
    NONE: { value: 'none', description: 'Left out.' },
    PREVIOUS: { value: 'previous', description: 'The previous close carried forward (open = high = low = close, volume 0).' },
  } as const,
});

export const CandleRef = builder.objectRef<Candle>('Candle').implement({
  description: 'One OHLCV bar. Always current: equal to aggregating the raw ticks of its bucket.',
  fields: (t) => ({
    symbol: t.exposeString('symbol'),
    bucket: t.expose('bucket', { type: 'DateTime', description: 'Start of the bucket (UTC-aligned).' }),
    time: t.float({
      description: 'Start of the bucket in UTC seconds, as lightweight-charts expects (a Float: no 32-bit overflow).',
      resolve: (c) => c.bucket.getTime() / 1000,
    }),
    open: t.exposeFloat('open'),
    high: t.exposeFloat('high'),
    low: t.exposeFloat('low'),
    close: t.exposeFloat('close'),
    volume: t.exposeFloat('volume'),
    tickCount: t.exposeFloat('tickCount'),
    final: t.exposeBoolean('final', { description: 'The bucket is closed, materialised and nothing is pending for it.' }),
    filled: t.boolean({ description: 'A gap filled by fill: PREVIOUS.', resolve: (c) => c.filled ?? false }),
  }),
});

interface Window {
  from: Date;
  to: Date;
  /** Which end of the window to keep when it holds more than `limit` bars. */
  keep: 'first' | 'last';
}

/** Resolves from/to/before/limit into one bounded window (documented on the field). */
export function candleWindow(
  granularity: Granularity,
  args: { from?: Date | null; to?: Date | null; before?: Date | null; limit: number },
  now = Date.now(),
): Window {
  const w = BUCKET_MS[granularity];
  if (!Number.isInteger(args.limit) || args.limit < 1 || args.limit > MAX_CANDLE_LIMIT) {
    throw badInput(`limit must be between 1 and ${MAX_CANDLE_LIMIT}`, { argument: 'limit' });
  }
  let from: number;
  let to: number;
  let keep: Window['keep'] = 'last';
  if (args.before) {
    if (args.from || args.to) throw badInput('before cannot be combined with from or to', { argument: 'before' });
    to = bucketStart(granularity, args.before.getTime()); // buckets that end at or before `before`
    from = to - args.limit * w;
  } else {
    const openBarEnd = bucketStart(granularity, now) + w; // default end: up to and including the open bar
    if (args.from) {
      from = args.from.getTime();
      // Paging forward from `from`: the first `limit` buckets, up to `to` or the open bar.
      to = args.to ? args.to.getTime() : Math.max(from, Math.min(openBarEnd, bucketStart(granularity, from) + args.limit * w));
      keep = 'first';
    } else {
      to = args.to ? args.to.getTime() : openBarEnd;
      from = bucketStart(granularity, to - 1) - (args.limit - 1) * w;
    }
  }
  if (from > to) throw badInput('from must not be after to', { argument: 'from' });
  if ((to - from) / w > MAX_WINDOW_BUCKETS) {
    throw badInput(`the window spans more than ${MAX_WINDOW_BUCKETS} ${granularity} buckets; narrow from/to`, { argument: 'to' });
  }
  return { from: new Date(from), to: new Date(to), keep };
}

/**
 * The cost of a candles call: the buckets its window spans (what the database aggregates or reads)
 * plus, for every bar it can return, the fields selected on it.
 */
export function candlesCost(args: {
  granularity: Granularity;
  from?: Date | null;
  to?: Date | null;
  before?: Date | null;
  limit?: number | null;
}): { field: number; multiplier: number } {
  const limit = Math.max(1, Math.min(MAX_CANDLE_LIMIT, args.limit ?? DEFAULT_CANDLE_LIMIT));
  let buckets = limit;
  try {
    const w = candleWindow(args.granularity, { from: args.from, to: args.to, before: args.before, limit });
    buckets = Math.max(1, Math.ceil((w.to.getTime() - w.from.getTime()) / BUCKET_MS[args.granularity]));
  } catch {
    // an invalid window is refused by the resolver before any query; price it by its limit
  }
  return { field: buckets, multiplier: Math.min(limit, buckets) };
}

builder.queryField('candles', (t) =>
  t.field({
    type: [CandleRef],
    complexity: (args) => candlesCost(args),
    description: [
      'OHLCV candles of a symbol in ascending time, always current (the open bar and late ticks included).',
      '`from` is inclusive and `to` exclusive, both on bucket starts. Without `from`, the `limit` bars ending at `to`',
      `(default: now, including the open bar); with \`from\`, the first \`limit\` bars from it (up to \`to\` or now). \`before\`: the \`limit\``,
      `bars ending at or before that time, for scrolling back (not combinable with from/to). limit ≤ ${MAX_CANDLE_LIMIT};`,
      `a window may span at most ${MAX_WINDOW_BUCKETS} buckets.`,
    ].join(' '),
    args: {
      symbol: t.arg.string({ required: true }),
      granularity: t.arg({ type: GranularityEnum, required: true }),
      from: t.arg({ type: 'DateTime', required: false }),
      to: t.arg({ type: 'DateTime', required: false }),
      before: t.arg({ type: 'DateTime', required: false }),
      limit: t.arg.int({ required: false, defaultValue: DEFAULT_CANDLE_LIMIT }),
      fill: t.arg({ type: FillEnum, required: false, defaultValue: 'none' }),
    },
    resolve: async (_root, args, ctx) => {
      const symbol = await ctx.assets.requireSymbol(args.symbol);
      const limit = args.limit ?? DEFAULT_CANDLE_LIMIT;
      const window = candleWindow(args.granularity, { from: args.from, to: args.to, before: args.before, limit });
      if (window.from.getTime() === window.to.getTime()) return [];
      return readCandles(ctx.db, symbol, args.granularity, window.from, window.to, args.fill === 'previous', {
        ...cancelWith(ctx),
        limit,
        keep: window.keep,
      });
    },
  }),
);

interface WatermarkRow {
  name: string;
  bucket_interval: string | { minutes?: number; hours?: number; days?: number };
  watermark: Date | null;
  pending_invalidations: string;
  last_refresh_at: Date | null;
  last_refresh_ms: number | null;
}

export interface Watermark {
  rollup: string;
  granularity: Granularity | null;
  watermark: Date | null;
  pendingInvalidations: number;
  lastRefreshAt: Date | null;
  lastRefreshMs: number | null;
}

const GRANULARITY_OF_ROLLUP: Record<string, Granularity> = { ohlcv_1min: 'minute', ohlcv_1hour: 'hour', ohlcv_1day: 'day' };

export function granularityOfRollup(rollup: string): Granularity | null {
  return GRANULARITY_OF_ROLLUP[rollup] ?? null;
}

export async function readWatermarks(db: Db, options?: AbortableQueryOptions): Promise<Watermark[]> {
  const { rows } = await sql<WatermarkRow>`SELECT name, bucket_interval, watermark, pending_invalidations, last_refresh_at, last_refresh_ms
                                            FROM lakets.show_rollup_dag()`.execute(db, options);
  return rows.map((r) => ({
    rollup: r.name,
    granularity: granularityOfRollup(r.name),
    watermark: r.watermark,
    pendingInvalidations: Number(r.pending_invalidations),
    lastRefreshAt: r.last_refresh_at,
    lastRefreshMs: r.last_refresh_ms,
  }));
}

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
    resolve: (_root, _args, ctx) => readWatermarks(ctx.db, cancelWith(ctx)),
  }),
);

builder.subscriptionField('candleUpdated', (t) =>
  t.field({
    type: CandleRef,
    description:
      'The full current bar at once, then every change of any bar of this symbol and granularity — the open bar and revised past bars (late ticks, corrections). Coalesced per bar (latest wins).',
    args: {
      symbol: t.arg.string({ required: true }),
      granularity: t.arg({ type: GranularityEnum, required: true }),
    },
    complexity: 10,
    subscribe: async (_root, args, ctx) => ctx.candles.subscribe(await ctx.assets.requireSymbol(args.symbol), args.granularity),
    resolve: (candle) => candle,
  }),
);
