import { sql, type AbortableQueryOptions } from 'kysely';
import { cancelledBy, type Db } from '../db/pool.ts';
import type { AssetCatalog } from './assets.ts';
import { BUCKET_MS, bucketStart, type Granularity } from './granularity.ts';
import { InputError } from './input-error.ts';
import type { LatestQueue } from './latest-queue.ts';

export const DEFAULT_CANDLE_LIMIT = 500;
export const MAX_CANDLE_LIMIT = 5000;
/** The widest window one request may span, in buckets of its granularity. */
export const MAX_WINDOW_BUCKETS = 10_000;

export interface Candle {
  symbol: string;
  bucket: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  tickCount: number;
  final: boolean;
  filled?: boolean;
}

/** A row of lakets.candles / candles_filled as node-pg returns it. */
export interface CandleRow {
  bucket: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  tick_count: string;
  final: boolean;
  filled?: boolean;
}

function toCandle(symbol: string, r: CandleRow): Candle {
  return {
    symbol,
    bucket: r.bucket,
    open: r.open,
    high: r.high,
    low: r.low,
    close: r.close,
    volume: r.volume,
    tickCount: Number(r.tick_count),
    final: r.final,
    ...(r.filled === undefined ? {} : { filled: r.filled }),
  };
}

/** Always-current candles of [from, to) by bucket start (lakets.candles / candles_filled). */
export async function readCandles(
  db: Db,
  symbol: string,
  granularity: Granularity,
  from: Date,
  to: Date,
  fill = false,
  options?: AbortableQueryOptions & { limit?: number; keep?: 'first' | 'last' },
): Promise<Candle[]> {
  const source = fill
    ? sql`lakets.candles_filled(${symbol}, ${granularity}, ${from}, ${to})`
    : sql`lakets.candles(${symbol}, ${granularity}, ${from}, ${to})`;
  // With a limit, only the bars kept cross the wire: a window of 10,000 buckets asked for one bar
  // must not make this process parse 10,000 rows.
  const query =
    options?.limit === undefined
      ? sql<CandleRow>`SELECT * FROM ${source} AS c`
      : options.keep === 'first'
        ? sql<CandleRow>`SELECT * FROM ${source} AS c ORDER BY c.bucket LIMIT ${options.limit}`
        : sql<CandleRow>`SELECT * FROM (SELECT * FROM ${source} AS c ORDER BY c.bucket DESC LIMIT ${options.limit}) AS l ORDER BY l.bucket`;
  const { rows } = await query.execute(db, options);
  return rows.map((r) => toCandle(symbol, r));
}

export interface CandleWindow {
  from: Date;
  to: Date;
  /** Which end of the window to keep when it holds more than `limit` bars. */
  keep: 'first' | 'last';
}

export interface CandleRange {
  from?: Date | null;
  to?: Date | null;
  before?: Date | null;
  limit: number;
}

/** Resolves from/to/before/limit into one bounded window (documented on Query.candles). */
export function candleWindow(granularity: Granularity, args: CandleRange, now = Date.now()): CandleWindow {
  const w = BUCKET_MS[granularity];
  if (!Number.isInteger(args.limit) || args.limit < 1 || args.limit > MAX_CANDLE_LIMIT) {
    throw new InputError(`limit must be between 1 and ${MAX_CANDLE_LIMIT}`, { argument: 'limit' });
  }
  let from: number;
  let to: number;
  let keep: CandleWindow['keep'] = 'last';
  if (args.before) {
    if (args.from || args.to) throw new InputError('before cannot be combined with from or to', { argument: 'before' });
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
  if (from > to) throw new InputError('from must not be after to', { argument: 'from' });
  if ((to - from) / w > MAX_WINDOW_BUCKETS) {
    throw new InputError(`the window spans more than ${MAX_WINDOW_BUCKETS} ${granularity} buckets; narrow from/to`, { argument: 'to' });
  }
  return { from: new Date(from), to: new Date(to), keep };
}

/** The buckets a candles request's window spans (what the database aggregates or reads); its limit when the window is invalid. */
export function candleWindowBuckets(granularity: Granularity, args: CandleRange): number {
  try {
    const w = candleWindow(granularity, args);
    return Math.max(1, Math.ceil((w.to.getTime() - w.from.getTime()) / BUCKET_MS[granularity]));
  } catch {
    // an invalid window is refused before any query; it is priced by its limit
    return args.limit;
  }
}

/** Live bars of a symbol and granularity (the CandleFeed). */
export interface CandleSubscriptions {
  subscribe(symbol: string, granularity: Granularity): LatestQueue<Candle>;
}

/** Candles of the known symbols: bounded reads on the bulk connections, and their subscriptions. */
export class CandleService {
  constructor(
    private readonly bulkDb: Db,
    private readonly assets: AssetCatalog,
    private readonly feed: CandleSubscriptions,
  ) {}

  async read(
    request: CandleRange & { symbol: string; granularity: Granularity; fill: boolean },
    signal?: AbortSignal,
  ): Promise<Candle[]> {
    const symbol = await this.assets.requireSymbol(request.symbol);
    const window = candleWindow(request.granularity, request);
    if (window.from.getTime() === window.to.getTime()) return [];
    return readCandles(this.bulkDb, symbol, request.granularity, window.from, window.to, request.fill, {
      ...cancelledBy(signal),
      limit: request.limit,
      keep: window.keep,
    });
  }

  /** The current bar at once, then every change of a bar of this symbol and granularity. */
  async subscribe(symbol: string, granularity: Granularity): Promise<LatestQueue<Candle>> {
    return this.feed.subscribe(await this.assets.requireSymbol(symbol), granularity);
  }
}
