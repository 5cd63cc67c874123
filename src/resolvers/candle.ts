import {
  candleId,
  DEFAULT_CANDLE_LIMIT,
  MAX_CANDLE_LIMIT,
  MAX_SERIES_BARS,
  MAX_SERIES_SYMBOLS,
  MAX_TICK_COUNT,
  MAX_WINDOW_BUCKETS,
  type Candle,
  type CandlePage,
  type CandleSeries,
  type SizeArgs,
} from '../services/candles.ts';
import { ALLOWED_MULTIPLES, rowsPerBar, shortestBarMs, UTC, type Granularity } from '../services/granularity.ts';
import { builder } from './builder.ts';

export const GranularityEnum = builder.enumType('Granularity', {
  description: 'The unit of a bar size; `multiple` says how many of it make one bar.',
  values: {
    MINUTE: { value: 'minute', description: `Minutes (multiple ${ALLOWED_MULTIPLES.minute.join(', ')}), aligned to 2000-01-01T00:00Z; the time zone plays no part.` },
    HOUR: { value: 'hour', description: `Hours (multiple ${ALLOWED_MULTIPLES.hour.join(', ')}), aligned to 2000-01-01T00:00Z; the time zone plays no part.` },
    DAY: { value: 'day', description: 'Days from local midnight to local midnight in timeZone (23 or 25 hours across daylight-saving changes).' },
    WEEK: { value: 'week', description: "Weeks from Monday's local midnight in timeZone." },
    MONTH: { value: 'month', description: `Months from the 1st's local midnight in timeZone (multiple ${ALLOWED_MULTIPLES.month.join(', ')}, aligned to January).` },
  } as const,
});

const FillEnum = builder.enumType('Fill', {
  description: 'How buckets without ticks are returned.',
  values: {
    NONE: { value: 'none', description: 'Left out: limit counts bars, and the search reaches further back or forward.' },
    PREVIOUS: { value: 'previous', description: 'limit consecutive buckets, an empty one repeating the previous close (open = high = low = close, volume 0).' },
  } as const,
});

export const CandleRef = builder.objectRef<Candle>('Candle').implement({
  description: 'One OHLCV bar. Always current: equal to aggregating the raw ticks of its bucket.',
  fields: (t) => ({
    id: t.id({
      description: 'A stable key for normalised caches (Apollo, urql, Relay): the same bar of the same symbol and size has the same id in every query and update.',
      resolve: (c) => candleId(c),
    }),
    symbol: t.exposeString('symbol'),
    bucket: t.expose('bucket', { type: 'DateTime', description: 'Start of the bar.' }),
    time: t.float({
      description: 'Start of the bar in UTC seconds, as lightweight-charts expects (a Float: no 32-bit overflow).',
      resolve: (c) => c.bucket.getTime() / 1000,
    }),
    open: t.exposeFloat('open'),
    high: t.exposeFloat('high'),
    low: t.exposeFloat('low'),
    close: t.exposeFloat('close'),
    volume: t.exposeFloat('volume'),
    tickCount: t.exposeInt('tickCount', { description: `Ticks in the bar (at most ${MAX_TICK_COUNT}: a bar of more reports that).` }),
    final: t.exposeBoolean('final', { description: 'The bar had closed at the last refresh and nothing is pending for it; a late tick makes it not final again until the next refresh.' }),
    filled: t.exposeBoolean('filled', { description: 'An empty bucket filled by fill: PREVIOUS.' }),
  }),
});

const CandleSeriesRef = builder.objectRef<CandleSeries>('CandleSeries').implement({
  description: 'The bars of one symbol of a candleSeries request.',
  fields: (t) => ({
    symbol: t.exposeString('symbol'),
    // Priced by candleSeries for all its symbols.
    candles: t.field({ type: [CandleRef], complexity: { field: 0, multiplier: 1 }, resolve: (s) => s.candles }),
  }),
});

interface SizeAndPageArgs {
  granularity: Granularity;
  multiple?: number | null;
  timeZone?: string | null;
  from?: Date | null;
  to?: Date | null;
  limit?: number | null;
}

/** One bar's price: the rollup rows it is composed of. */
function barCost(args: SizeAndPageArgs): number {
  return rowsPerBar(args.granularity, args.multiple ?? 1, args.timeZone ?? UTC);
}

/** The bars a request can return per symbol: its limit, or fewer when a from/to window cannot hold that many. */
function barsOf(args: SizeAndPageArgs): number {
  const limit = Math.max(1, Math.min(MAX_CANDLE_LIMIT, args.limit ?? DEFAULT_CANDLE_LIMIT));
  if (!args.from || !args.to || args.to < args.from) return limit;
  const fits = Math.ceil((args.to.getTime() - args.from.getTime()) / shortestBarMs(args.granularity, args.multiple ?? 1)) + 1;
  return Math.min(limit, fits);
}

/** The cost of a candles call: for every bar it can return, the rollup rows it reads and the fields selected on it. */
export function candlesCost(args: SizeAndPageArgs): { field: number; multiplier: number } {
  const bars = barsOf(args);
  return { field: bars * barCost(args), multiplier: bars };
}

/** candleSeries: the same for every symbol. */
export function candleSeriesCost(args: SizeAndPageArgs & { symbols: readonly string[] }): { field: number; multiplier: number } {
  const bars = Math.max(1, args.symbols.length) * barsOf(args);
  return { field: bars * barCost(args), multiplier: bars };
}

const PAGING = [
  '`from` is inclusive and `to` exclusive, on bucket starts. With `before`: the newest `limit` bars whose bucket starts before it;',
  'to page back, pass the first bar\'s `bucket` as the next `before` (an empty page means there is no older history).',
  'With `from`: the oldest `limit` bars from it (before `to` when given). `to` alone: the newest `limit` bars starting before it.',
  'None of them: the newest `limit` bars, the open bar included.',
  'Without fill, `limit` counts bars: empty buckets are skipped, however long the gap. With fill: PREVIOUS, `limit` consecutive buckets.',
  `limit ≤ ${MAX_CANDLE_LIMIT}; a from/to window spans at most ${MAX_WINDOW_BUCKETS} bars.`,
].join(' ');

const sizeArgs = builder.args((t) => ({
  granularity: t.field({ type: GranularityEnum, required: true }),
  multiple: t.int({ required: false, defaultValue: 1, description: 'How many granularity units make a bar: 5 with MINUTE for five-minute bars.' }),
  timeZone: t.string({
    required: false,
    defaultValue: UTC,
    description: 'An IANA time zone ("America/New_York") in which DAY, WEEK and MONTH bars start at local midnight; ignored for MINUTE and HOUR.',
  }),
}));

const pageArgs = builder.args((t) => ({
  from: t.field({ type: 'DateTime', required: false }),
  to: t.field({ type: 'DateTime', required: false }),
  before: t.field({ type: 'DateTime', required: false }),
  limit: t.int({ required: false, defaultValue: DEFAULT_CANDLE_LIMIT }),
  fill: t.field({ type: FillEnum, required: false, defaultValue: 'none' }),
}));

/** The size and page arguments shared by candles and candleSeries, with their defaults applied. */
function sizeAndPage(args: {
  granularity: Granularity;
  multiple?: number | null;
  timeZone?: string | null;
  from?: Date | null;
  to?: Date | null;
  before?: Date | null;
  limit?: number | null;
  fill?: string | null;
}): SizeArgs & CandlePage {
  return {
    granularity: args.granularity,
    multiple: args.multiple ?? 1,
    timeZone: args.timeZone ?? UTC,
    from: args.from,
    to: args.to,
    before: args.before,
    limit: args.limit ?? DEFAULT_CANDLE_LIMIT,
    fill: args.fill === 'previous',
  };
}

builder.queryField('candles', (t) =>
  t.field({
    type: [CandleRef],
    complexity: (args) => candlesCost(args),
    description: `OHLCV bars of a symbol in ascending time, of any size, always current (the open bar and late ticks included). ${PAGING}`,
    args: { symbol: t.arg.string({ required: true }), ...sizeArgs, ...pageArgs },
    resolve: (_root, args, ctx) =>
      ctx.services.candles.read(
        { symbol: args.symbol, ...sizeAndPage(args) },
        ctx.signal,
      ),
  }),
);

builder.queryField('candleSeries', (t) =>
  t.field({
    type: [CandleSeriesRef],
    complexity: (args) => candleSeriesCost(args),
    description: `The bars of several symbols (a watch-list) in one request and one database round trip, each exactly what candles gives for it; in the order of \`symbols\`, duplicates once. At most ${MAX_SERIES_SYMBOLS} symbols and ${MAX_SERIES_BARS} bars (symbols × limit). ${PAGING}`,
    args: { symbols: t.arg.stringList({ required: true }), ...sizeArgs, ...pageArgs },
    resolve: (_root, args, ctx) =>
      ctx.services.candles.readSeries(
        { symbols: args.symbols, ...sizeAndPage(args) },
        ctx.signal,
      ),
  }),
);

builder.subscriptionField('candleUpdated', (t) =>
  t.field({
    type: CandleRef,
    description:
      'The current bar at once, then every change of any bar of this symbol and size: the open bar, revised past bars (late ticks, corrections), and a bar turning final once a refresh has seen it closed. Coalesced per bar (latest wins).',
    args: { symbol: t.arg.string({ required: true }), ...sizeArgs },
    complexity: 10,
    subscribe: (_root, args, ctx) =>
      ctx.services.candles.subscribe(args.symbol, { granularity: args.granularity, multiple: args.multiple ?? 1, timeZone: args.timeZone ?? UTC }),
    resolve: (candle) => candle,
  }),
);
