import { sql } from 'kysely';
import { TICK_TABLE } from '../config.ts';
import { cancelledBy, type Db } from '../db/pool.ts';
import { changeFeedCurrentStateSql } from '../lake/change-feed.ts';
import { toPlainRow } from '../lake/duckdb-values.ts';
import { filesForRange } from '../lake/fingerprint.ts';
import { formatMicrosUtc } from '../lake/lsn.ts';
import { LakeReadTooLargeError, withLocalFiles, type LocalReadLimits } from '../lake/local-snapshot.ts';
import { lakeTableExists } from '../lake/log-listing.ts';
import type { LakeReadGate } from '../lake/read-gate.ts';
import type { LakeTable } from '../lake/table.ts';
import { loadSnapshot } from '../lake/snapshot.ts';
import { quoteLiteral } from '../lake/sql.ts';
import type { AssetCatalog } from './assets.ts';
import { InputError } from './input-error.ts';

export const DEFAULT_TICK_LIMIT = 1000;
export const MAX_TICK_LIMIT = 10_000;
export const MAX_TICK_WINDOW_DAYS = 31;
const DAY_MS = 86_400_000;
/** Ticks may be stamped up to a day ahead (LAKETS_MAX_FUTURE_SKEW is at most that): a window without `to` reaches that far. */
const FUTURE_MS = DAY_MS;
/**
 * Lake ticks read beyond `limit` when a cursor narrows a lake window to whole milliseconds: the
 * ticks of the cursor's own millisecond already returned are filtered out after the read.
 */
const CURSOR_SLACK = 100;

export interface RawTick {
  symbol: string;
  /** ISO-8601 with microseconds, UTC. */
  time: string;
  price: number;
  volume: number;
  tickId: string;
  source: 'postgres' | 'lake';
}

export type TickOrder = 'newest_first' | 'oldest_first';

export interface TickRequest {
  symbol: string;
  from?: Date | null;
  to?: Date | null;
  limit: number;
  /** Default: oldest first within a from/to range, newest first without one. */
  order?: TickOrder | null;
  /** The cursor of the last tick of the previous page: the page continues after it, in the same order. */
  after?: string | null;
}

/** The lake table of the ticks, the gate its reads take turns through, and what one read may download. */
export interface TickLake {
  table: LakeTable;
  reads: LakeReadGate;
  /** Most files and bytes one read may download from a remote lake (a local one is read in place). */
  limits: LocalReadLimits;
}

interface PgTickRow {
  symbol: string;
  time: string;
  price: number;
  volume: number;
  tick_id: string;
}

/** Microseconds since the Unix epoch of an ISO-8601 time with up to six fractional digits. */
export function isoToMicros(iso: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:?\d\d)?$/.exec(iso);
  if (!m) return Date.parse(iso) * 1000;
  const seconds = Date.parse(`${m[1]}${m[3] ?? 'Z'}`);
  return seconds * 1000 + Number((m[2] ?? '').padEnd(6, '0'));
}

/** A tick's place in (time, tick_id) order. */
interface TickPosition {
  micros: bigint;
  tickId: bigint;
}

const CURSOR_PREFIX = 't1:';

/**
 * A tick's cursor: its microsecond time and tick id, the exact key ticks are ordered by. Opaque to
 * clients (base64url), versioned so that its content may change.
 */
export function encodeTickCursor(tick: Pick<RawTick, 'time' | 'tickId'>): string {
  return Buffer.from(`${CURSOR_PREFIX}${isoToMicros(tick.time)}:${tick.tickId}`).toString('base64url');
}

export function decodeTickCursor(cursor: string, argument = 'after'): TickPosition {
  const refuse = () => new InputError('after is not a cursor of this API: pass the cursor of a tick of the previous page', { argument });
  if (cursor.length > 80 || !/^[A-Za-z0-9_-]+$/.test(cursor)) throw refuse();
  const m = /^t1:(-?\d{1,17}):(\d{1,19})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m) throw refuse();
  const position = { micros: BigInt(m[1]!), tickId: BigInt(m[2]!) };
  // Within the years a tick may have (1900-9999), and a bigint id.
  if (position.micros < -2_208_988_800_000_000n || position.micros > 253_402_300_800_000_000n || position.tickId > 9_223_372_036_854_775_807n) throw refuse();
  return position;
}

function compareTicks(a: { micros: bigint; id: bigint }, b: { micros: bigint; id: bigint }): number {
  return a.micros < b.micros ? -1 : a.micros > b.micros ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** The window a request reads, and its order (documented on Query.ticks). */
export function tickWindow(request: Omit<TickRequest, 'symbol'>, now = Date.now()): { from: Date; to: Date; order: TickOrder; after: TickPosition | null } {
  const limit = request.limit;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_TICK_LIMIT) throw new InputError(`limit must be between 1 and ${MAX_TICK_LIMIT}`, { argument: 'limit' });
  const ranged = Boolean(request.from || request.to);
  const order: TickOrder = request.order ?? (ranged ? 'oldest_first' : 'newest_first');
  const after = request.after ? decodeTickCursor(request.after) : null;
  const maxMs = MAX_TICK_WINDOW_DAYS * DAY_MS;
  let from: number;
  let to: number;
  if (ranged) {
    to = request.to ? request.to.getTime() : Math.min(request.from!.getTime() + maxMs, now + FUTURE_MS);
    from = request.from ? request.from.getTime() : to - maxMs;
  } else {
    // No range: the 31 days before now (newest first), or from the cursor on, either way.
    const anchor = after ? Number(after.micros / 1000n) : undefined;
    if (order === 'newest_first') {
      to = anchor !== undefined ? anchor + 1 : now + FUTURE_MS;
      from = to - maxMs;
    } else {
      from = anchor ?? now + FUTURE_MS - maxMs;
      to = from + maxMs;
    }
  }
  if (from > to) throw new InputError('from must not be after to', { argument: 'from' });
  if (to - from > maxMs) throw new InputError(`the window spans more than ${MAX_TICK_WINDOW_DAYS} days; narrow from/to`, { argument: 'to' });
  return { from: new Date(from), to: new Date(to), order, after };
}

/**
 * Raw ticks across both tiers: resident chunks from Postgres, dropped ones from the Delta table, so
 * history stays queryable after retention. Bounded: a limit and a window of at most 31 days.
 */
export class TickHistory {
  constructor(
    private readonly bulkDb: Db,
    private readonly assets: AssetCatalog,
    /** Unset: Postgres only. */
    private readonly lake: TickLake | undefined,
  ) {}

  /**
   * A page of ticks of a symbol in [from, to), ordered by (time, tickId) oldest or newest first,
   * continuing after a cursor; without a range, newest first over the last 31 days.
   */
  async read(request: TickRequest, signal: AbortSignal): Promise<RawTick[]> {
    const symbol = await this.assets.requireSymbol(request.symbol);
    const limit = request.limit;
    const { from, to, order, after } = tickWindow(request);
    const newest = order === 'newest_first';
    const cursorTime = after ? formatMicrosUtc(after.micros) : null;
    // The cursor as a bound of the (symbol, time) index, then exactly on (time, tick_id). ORDER BY
    // names the table's columns: bare names would sort by the text columns of the same names
    // ("100" before "99"), and without the (symbol, time) index.
    const afterCursor = !after
      ? sql``
      : newest
        ? sql`AND time <= ${cursorTime}::timestamptz AND (time, tick_id) < (${cursorTime}::timestamptz, ${after.tickId.toString()}::bigint)`
        : sql`AND time >= ${cursorTime}::timestamptz AND (time, tick_id) > (${cursorTime}::timestamptz, ${after.tickId.toString()}::bigint)`;
    const { rows } = await sql<PgTickRow>`
      SELECT symbol, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time, price, volume, tick_id::text AS tick_id
        FROM ${sql.table(TICK_TABLE)} AS t WHERE symbol = ${symbol} AND time >= ${from} AND time < ${to} ${afterCursor}
       ORDER BY ${newest ? sql`t.time DESC, t.tick_id DESC` : sql`t.time, t.tick_id`} LIMIT ${limit}`.execute(this.bulkDb, cancelledBy(signal));
    const resident = rows.map((r): RawTick => ({ symbol, time: r.time, price: r.price, volume: r.volume, tickId: r.tick_id, source: 'postgres' }));

    // The lake's part of the window: up to the cursor (its millisecond included, filtered below).
    const lakeFrom = after && !newest ? new Date(Math.max(from.getTime(), Number(after.micros / 1000n))) : from;
    const lakeTo = after && newest ? new Date(Math.min(to.getTime(), Number(after.micros / 1000n) + 1)) : to;
    const dropped = await this.bulkDb
      .selectFrom('lakets.chunks')
      .select(['range_start', 'range_end'])
      .where('table_name', '=', TICK_TABLE)
      .where('status', '=', 'dropped')
      .where('range_start', '<', lakeTo)
      .where('range_end', '>', lakeFrom)
      .execute(cancelledBy(signal));
    // Postgres already returns resident ticks in order; only a merge with the lake needs a sort.
    const lake = this.lake;
    if (dropped.length === 0 || !lake || lakeFrom >= lakeTo) return resident;
    const ticks = new Map<string, RawTick>(resident.map((t) => [t.tickId, t]));
    const lakeLimit = after ? limit + CURSOR_SLACK : limit;
    for (const lakeTick of await this.readLake(lake, signal, symbol, lakeFrom, lakeTo, dropped, lakeLimit, newest)) {
      if (!ticks.has(lakeTick.tickId)) ticks.set(lakeTick.tickId, lakeTick);
    }
    // Sort keys computed once per tick, not once per comparison.
    let keyed = [...ticks.values()].map((t) => ({ t, micros: BigInt(isoToMicros(t.time)), id: BigInt(t.tickId) }));
    if (after) {
      const cursor = { micros: after.micros, id: after.tickId };
      keyed = keyed.filter((k) => (newest ? compareTicks(k, cursor) < 0 : compareTicks(k, cursor) > 0));
    }
    keyed.sort((a, b) => (newest ? compareTicks(b, a) : compareTicks(a, b)));
    return keyed.slice(0, limit).map((k) => k.t);
  }

  /**
   * Ticks of the dropped ranges from the lake: the files of the window's days are fetched (from a
   * remote lake into the local cache, within the read's limits), then read through the lake read gate
   * (reads take turns on DuckDB, so clients cannot stall the sync). No table yet: no lake ticks.
   */
  private async readLake(
    lake: TickLake,
    signal: AbortSignal,
    symbol: string,
    from: Date,
    to: Date,
    dropped: Array<{ range_start: Date; range_end: Date }>,
    limit: number,
    newestFirst = false,
  ): Promise<RawTick[]> {
    if (!(await lakeTableExists(lake.table))) return [];
    const snapshot = await loadSnapshot(lake.table);
    const ranges = dropped.map((d) => {
      const lo = new Date(Math.max(from.getTime(), d.range_start.getTime())).toISOString();
      const hi = new Date(Math.min(to.getTime(), d.range_end.getTime())).toISOString();
      return `("time" >= ${quoteLiteral(lo)}::TIMESTAMPTZ AND "time" < ${quoteLiteral(hi)}::TIMESTAMPTZ)`;
    });
    const where = `symbol = ${quoteLiteral(symbol)} AND (${ranges.join(' OR ')})`;
    const pruned = filesForRange(snapshot, from, to, { timeColumn: 'time', dayPartitionColumn: 'date' });
    let rows;
    try {
      rows = await withLocalFiles(
        pruned,
        (local) => {
          const query = `SELECT symbol, strftime("time" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS time, price, volume, tick_id::VARCHAR AS tick_id
               FROM (${changeFeedCurrentStateSql(local, { where })}) AS s
              ORDER BY ${newestFirst ? 's."time" DESC, s.tick_id DESC' : 's."time", s.tick_id'} LIMIT ${Number(limit)}`;
          return lake.reads.run(signal, async (connection) => (await connection.runAndReadAll(query)).getRowObjects().map(toPlainRow));
        },
        lake.limits,
      );
    } catch (error) {
      if (error instanceof LakeReadTooLargeError) {
        throw new InputError(`the window needs ${error.files} lake files (${Math.ceil(error.bytes / 1048576)} MiB) of dropped history, more than one read may fetch; narrow from/to`, { argument: 'from' });
      }
      throw error;
    }
    return rows.map((r) => ({
      symbol: String(r.symbol),
      time: String(r.time),
      price: Number(r.price),
      volume: Number(r.volume),
      tickId: String(r.tick_id),
      source: 'lake' as const,
    }));
  }
}
