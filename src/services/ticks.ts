import { sql } from 'kysely';
import { TICK_TABLE } from '../config.ts';
import { cancelledBy, type Db } from '../db/pool.ts';
import { changeFeedCurrentStateSql } from '../lake/change-feed.ts';
import { toPlainRow } from '../lake/duckdb-values.ts';
import { filesForRange } from '../lake/fingerprint.ts';
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

export interface RawTick {
  symbol: string;
  /** ISO-8601 with microseconds, UTC. */
  time: string;
  price: number;
  volume: number;
  tickId: string;
  source: 'postgres' | 'lake';
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

  /** The first `limit` ticks of a symbol in [from, to), ascending by (time, tickId); default: the last hour. */
  async read(request: { symbol: string; from?: Date | null; to?: Date | null; limit: number }, signal: AbortSignal): Promise<RawTick[]> {
    const symbol = await this.assets.requireSymbol(request.symbol);
    const limit = request.limit;
    if (limit < 1 || limit > MAX_TICK_LIMIT) throw new InputError(`limit must be between 1 and ${MAX_TICK_LIMIT}`, { argument: 'limit' });
    const to = request.to ?? new Date();
    const from = request.from ?? new Date(to.getTime() - 3_600_000);
    if (from > to) throw new InputError('from must not be after to', { argument: 'from' });
    if (to.getTime() - from.getTime() > MAX_TICK_WINDOW_DAYS * 86_400_000) {
      throw new InputError(`the window spans more than ${MAX_TICK_WINDOW_DAYS} days; narrow from/to`, { argument: 'to' });
    }
    const { rows } = await sql<PgTickRow>`
      SELECT symbol, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time, price, volume, tick_id::text AS tick_id
        FROM ${sql.table(TICK_TABLE)} WHERE symbol = ${symbol} AND time >= ${from} AND time < ${to}
       ORDER BY time, tick_id LIMIT ${limit}`.execute(this.bulkDb, cancelledBy(signal));
    const resident = rows.map((r): RawTick => ({ symbol, time: r.time, price: r.price, volume: r.volume, tickId: r.tick_id, source: 'postgres' }));

    const dropped = await this.bulkDb
      .selectFrom('lakets.chunks')
      .select(['range_start', 'range_end'])
      .where('table_name', '=', TICK_TABLE)
      .where('status', '=', 'dropped')
      .where('range_start', '<', to)
      .where('range_end', '>', from)
      .execute(cancelledBy(signal));
    // Postgres already returns resident ticks in order; only a merge with the lake needs a sort.
    const lake = this.lake;
    if (dropped.length === 0 || !lake) return resident;
    const ticks = new Map<string, RawTick>(resident.map((t) => [t.tickId, t]));
    for (const lakeTick of await this.readLake(lake, signal, symbol, from, to, dropped, limit)) {
      if (!ticks.has(lakeTick.tickId)) ticks.set(lakeTick.tickId, lakeTick);
    }
    // Sort keys computed once per tick, not once per comparison.
    const keyed = [...ticks.values()].map((t) => ({ t, micros: isoToMicros(t.time), id: BigInt(t.tickId) }));
    keyed.sort((a, b) => a.micros - b.micros || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
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
              ORDER BY "time", tick_id LIMIT ${Number(limit)}`;
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
