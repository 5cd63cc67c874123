import { candleWindowBuckets, DEFAULT_CANDLE_LIMIT, MAX_CANDLE_LIMIT, MAX_WINDOW_BUCKETS, type Candle } from '../services/candles.ts';
import type { Granularity } from '../services/granularity.ts';
import { builder } from './builder.ts';

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
  const buckets = candleWindowBuckets(args.granularity, { from: args.from, to: args.to, before: args.before, limit });
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
    resolve: (_root, args, ctx) =>
      ctx.services.candles.read(
        {
          symbol: args.symbol,
          granularity: args.granularity,
          from: args.from,
          to: args.to,
          before: args.before,
          limit: args.limit ?? DEFAULT_CANDLE_LIMIT,
          fill: args.fill === 'previous',
        },
        ctx.signal,
      ),
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
    subscribe: (_root, args, ctx) => ctx.services.candles.subscribe(args.symbol, args.granularity),
    resolve: (candle) => candle,
  }),
);
