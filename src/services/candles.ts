import { sql, type AbortableQueryOptions } from 'kysely';
import { cancelledBy, type Db } from '../db/pool.ts';
import { MAX_SYMBOLS_PER_REQUEST, type AssetCatalog } from './assets.ts';
import { checkMultiple, isCalendar, nominalBarMs, sizeKey, UTC, type BarSize, type Granularity } from './granularity.ts';
import { InputError } from './input-error.ts';
import type { LatestQueue } from './latest-queue.ts';
import type { TimeZones } from './time-zones.ts';

export const DEFAULT_CANDLE_LIMIT = 500;
/** Bars of one symbol per request. */
export const MAX_CANDLE_LIMIT = 5000;
/** The widest from/to window one request may name, in bars of its size. */
export const MAX_WINDOW_BUCKETS = 10_000;
/** Symbols of one candleSeries request. */
export const MAX_SERIES_SYMBOLS = MAX_SYMBOLS_PER_REQUEST;
/** Bars of one candleSeries request, over all its symbols (symbols × limit). */
export const MAX_SERIES_BARS = MAX_CANDLE_LIMIT;
/** GraphQL's Int is 32 bits: a bar of more ticks than this (a year at 100 ticks/s) reports this many. */
export const MAX_TICK_COUNT = 2_147_483_647;

export interface Candle {
  symbol: string;
  size: BarSize;
  /** Start of the bar. */
  bucket: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  tickCount: number;
  /** Closed at the last refresh and nothing pending for it. */
  final: boolean;
  /** An empty bucket filled with the previous close (fill: PREVIOUS). */
  filled: boolean;
}

/** A row of lakets.candle_page / candle_bars_at as node-pg returns it. */
export interface CandleRow {
  symbol: string;
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

/** The size arguments of a request, as the client wrote them. */
export interface SizeArgs {
  granularity: Granularity;
  multiple: number;
  timeZone: string;
}

/** Which bars of each symbol (documented on Query.candles). */
export interface CandlePage {
  from?: Date | null;
  to?: Date | null;
  before?: Date | null;
  limit: number;
  fill: boolean;
}

/** A stable key of a bar for normalised client caches: the same bar has the same id in every query and update. */
export function candleId(c: Pick<Candle, 'symbol' | 'size' | 'bucket'>): string {
  return `Candle:${c.symbol}:${sizeKey(c.size)}:${c.bucket.toISOString()}`;
}

function toCandle(size: BarSize, r: CandleRow): Candle {
  return {
    symbol: r.symbol,
    size,
    bucket: r.bucket,
    open: r.open,
    high: r.high,
    low: r.low,
    close: r.close,
    volume: r.volume,
    tickCount: Math.min(Number(r.tick_count), MAX_TICK_COUNT),
    final: r.final,
    filled: r.filled ?? false,
  };
}

/** Refuses a page the API does not serve: limit out of bounds, before with from/to, an inverted or oversize window. */
export function checkPage(size: Pick<SizeArgs, 'granularity' | 'multiple'>, page: CandlePage, limitArgument = 'limit'): void {
  if (!Number.isInteger(page.limit) || page.limit < 1 || page.limit > MAX_CANDLE_LIMIT) {
    throw new InputError(`limit must be between 1 and ${MAX_CANDLE_LIMIT}`, { argument: limitArgument });
  }
  if (page.before && (page.from || page.to)) throw new InputError('before cannot be combined with from or to', { argument: 'before' });
  if (page.from && page.to) {
    if (page.from > page.to) throw new InputError('from must not be after to', { argument: 'from' });
    const bars = (page.to.getTime() - page.from.getTime()) / nominalBarMs(size.granularity, size.multiple);
    if (bars > MAX_WINDOW_BUCKETS) {
      throw new InputError(`the window spans more than ${MAX_WINDOW_BUCKETS} ${size.granularity} buckets; narrow from/to`, { argument: 'to' });
    }
  }
}

/**
 * Pages of bars of each symbol, in one statement (lakets.candle_page): by symbol, ascending. Only
 * the bars kept cross the wire.
 */
export async function readPages(
  db: Db,
  symbols: readonly string[],
  size: BarSize,
  page: CandlePage,
  options?: AbortableQueryOptions,
): Promise<Map<string, Candle[]>> {
  const { rows } = await sql<CandleRow>`
    SELECT * FROM lakets.candle_page(${[...symbols]}::text[], ${size.granularity}, ${size.multiple}::integer, ${size.timeZone},
                                     ${page.from ?? null}::timestamptz, ${page.to ?? null}::timestamptz,
                                     ${page.before ?? null}::timestamptz, ${page.limit}::integer, ${page.fill})`.execute(db, options);
  const pages = new Map<string, Candle[]>(symbols.map((s) => [s, []]));
  for (const r of rows) pages.get(r.symbol)?.push(toCandle(size, r));
  for (const bars of pages.values()) bars.sort((a, b) => a.bucket.getTime() - b.bucket.getTime());
  return pages;
}

/** The bars of this size containing the given instants, per symbol (lakets.candle_bars_at): the live feed's read. */
export async function readBarsAt(
  db: Db,
  size: BarSize,
  instants: ReadonlyArray<readonly [symbol: string, at: Date]>,
  options?: AbortableQueryOptions,
): Promise<Candle[]> {
  if (instants.length === 0) return [];
  const { rows } = await sql<CandleRow>`
    SELECT * FROM lakets.candle_bars_at(${instants.map(([s]) => s)}::text[], ${instants.map(([, t]) => t)}::timestamptz[],
                                        ${size.granularity}, ${size.multiple}::integer, ${size.timeZone})`.execute(db, options);
  return rows.map((r) => toCandle(size, r));
}

/** Live bars of one size for a symbol (the CandleFeed). */
export interface CandleSubscriptions {
  subscribe(symbol: string, size: BarSize): LatestQueue<Candle>;
}

export interface CandleSeries {
  symbol: string;
  candles: Candle[];
}

/** Candles of the known symbols: bounded reads on the bulk connections, and their subscriptions. */
export class CandleService {
  constructor(
    private readonly bulkDb: Db,
    private readonly assets: AssetCatalog,
    private readonly zones: TimeZones,
    private readonly feed: CandleSubscriptions,
  ) {}

  /** Validates and normalises size arguments: an allowed multiple, a known zone (ignored, "UTC", for MINUTE and HOUR). */
  async size(args: SizeArgs): Promise<BarSize> {
    checkMultiple(args.granularity, args.multiple);
    const timeZone = await this.zones.canonical(args.timeZone);
    return { granularity: args.granularity, multiple: args.multiple, timeZone: isCalendar(args.granularity) ? timeZone : UTC };
  }

  /** A page of bars of one symbol. */
  async read(request: SizeArgs & CandlePage & { symbol: string }, signal?: AbortSignal): Promise<Candle[]> {
    const symbol = await this.assets.requireSymbol(request.symbol);
    const size = await this.size(request);
    checkPage(size, request);
    return (await readPages(this.bulkDb, [symbol], size, request, cancelledBy(signal))).get(symbol)!;
  }

  /** A page of bars of each symbol of a watch-list, in one round trip. */
  async readSeries(request: SizeArgs & CandlePage & { symbols: readonly string[] }, signal?: AbortSignal): Promise<CandleSeries[]> {
    if (request.symbols.length > MAX_SERIES_SYMBOLS) {
      throw new InputError(`too many symbols: ${request.symbols.length} given, at most ${MAX_SERIES_SYMBOLS} per request`, { argument: 'symbols' });
    }
    const symbols = await this.assets.requireSymbols(request.symbols);
    const size = await this.size(request);
    checkPage(size, request);
    if (symbols.length * request.limit > MAX_SERIES_BARS) {
      throw new InputError(`symbols × limit is ${symbols.length * request.limit}: at most ${MAX_SERIES_BARS} bars per request`, { argument: 'limit' });
    }
    const pages = await readPages(this.bulkDb, symbols, size, request, cancelledBy(signal));
    return symbols.map((symbol) => ({ symbol, candles: pages.get(symbol)! }));
  }

  /** The current bar at once, then every change of a bar of this symbol and size. */
  async subscribe(symbol: string, args: SizeArgs): Promise<LatestQueue<Candle>> {
    const known = await this.assets.requireSymbol(symbol);
    return this.feed.subscribe(known, await this.size(args));
  }
}
