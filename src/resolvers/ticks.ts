import fs from 'node:fs';
import path from 'node:path';
import { sql } from 'kysely';
import { builder } from './builder.ts';
import { badInput } from './errors.ts';
import { loadSnapshot } from '../lake/snapshot.ts';
import { changeFeedCurrentStateSql } from '../lake/change-feed.ts';
import { filesForRange } from '../lake/fingerprint.ts';
import { toPlainRow } from '../lake/duckdb-values.ts';
import type { LakeReadGate } from '../lake/read-gate.ts';
import { quoteLiteral } from '../lake/sql.ts';
import { cancelWith } from './context.ts';

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

const TickSource = builder.enumType('TickSource', {
  description: 'Where a tick was read from.',
  values: {
    POSTGRES: { value: 'postgres', description: 'A resident chunk.' },
    LAKE: { value: 'lake', description: 'The Delta Lake table: its chunk was dropped by retention.' },
  } as const,
});

const TickRef = builder.objectRef<RawTick>('Tick').implement({
  description: 'One raw tick.',
  fields: (t) => ({
    symbol: t.exposeString('symbol'),
    time: t.field({ type: 'DateTime', description: 'Event time (milliseconds; see epochMicros for full precision).', resolve: (k) => new Date(Date.parse(k.time)) }),
    epochMicros: t.float({ description: 'Event time in microseconds since the Unix epoch (exact).', resolve: (k) => isoToMicros(k.time) }),
    price: t.exposeFloat('price'),
    volume: t.exposeFloat('volume'),
    tickId: t.exposeString('tickId'),
    source: t.field({ type: TickSource, resolve: (k) => k.source }),
  }),
});

function isoToMicros(iso: string): number {
  const m = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:?\d\d)?$/.exec(iso);
  if (!m) return Date.parse(iso) * 1000;
  const seconds = Date.parse(`${m[1]}${m[3] ?? 'Z'}`);
  return seconds * 1000 + Number((m[2] ?? '').padEnd(6, '0'));
}

interface PgTickRow {
  symbol: string;
  time: string;
  price: number;
  volume: number;
  tick_id: string;
}

builder.queryField('ticks', (t) =>
  t.field({
    type: [TickRef],
    description: `Raw ticks of a symbol in [from, to), ascending by (time, tickId), across both tiers: resident chunks from Postgres, dropped ones from the Delta Lake table, so history stays queryable after retention. At most ${MAX_TICK_LIMIT} ticks (limit) and ${MAX_TICK_WINDOW_DAYS} days per request; defaults: the last hour, 1000 ticks.`,
    args: {
      symbol: t.arg.string({ required: true }),
      from: t.arg({ type: 'DateTime', required: false }),
      to: t.arg({ type: 'DateTime', required: false }),
      limit: t.arg.int({ required: false, defaultValue: DEFAULT_TICK_LIMIT }),
    },
    // Every tick it can return is read (from Postgres, or the lake for dropped chunks) and then
    // returned with the fields selected on it.
    complexity: (args) => {
      const limit = Math.max(1, Math.min(MAX_TICK_LIMIT, args.limit ?? DEFAULT_TICK_LIMIT));
      return { field: limit, multiplier: limit };
    },
    resolve: async (_root, args, ctx) => {
      const symbol = await ctx.assets.requireSymbol(args.symbol);
      const limit = args.limit ?? DEFAULT_TICK_LIMIT;
      if (limit < 1 || limit > MAX_TICK_LIMIT) throw badInput(`limit must be between 1 and ${MAX_TICK_LIMIT}`, { argument: 'limit' });
      const to = args.to ?? new Date();
      const from = args.from ?? new Date(to.getTime() - 3_600_000);
      if (from > to) throw badInput('from must not be after to', { argument: 'from' });
      if (to.getTime() - from.getTime() > MAX_TICK_WINDOW_DAYS * 86_400_000) {
        throw badInput(`the window spans more than ${MAX_TICK_WINDOW_DAYS} days; narrow from/to`, { argument: 'to' });
      }
      const { rows } = await sql<PgTickRow>`
        SELECT symbol, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS time, price, volume, tick_id::text AS tick_id
          FROM stock_ticks WHERE symbol = ${symbol} AND time >= ${from} AND time < ${to}
         ORDER BY time, tick_id LIMIT ${limit}`.execute(ctx.db, cancelWith(ctx));
      const resident = rows.map((r): RawTick => ({ symbol, time: r.time, price: r.price, volume: r.volume, tickId: r.tick_id, source: 'postgres' }));

      const dropped = await ctx.db
        .selectFrom('lakets.chunks')
        .select(['range_start', 'range_end'])
        .where('table_name', '=', 'stock_ticks')
        .where('status', '=', 'dropped')
        .where('range_start', '<', to)
        .where('range_end', '>', from)
        .execute(cancelWith(ctx));
      // Postgres already returns resident ticks in order; only a merge with the lake needs a sort.
      if (dropped.length === 0 || !ctx.lakeDir || !fs.existsSync(path.join(ctx.lakeDir, '_delta_log'))) return resident;
      const lake = { dir: ctx.lakeDir, gate: ctx.lakeReads, signal: ctx.signal };
      const ticks = new Map<string, RawTick>(resident.map((t) => [t.tickId, t]));
      for (const lakeTick of await readLakeTicks(lake, symbol, from, to, dropped, limit)) {
        if (!ticks.has(lakeTick.tickId)) ticks.set(lakeTick.tickId, lakeTick);
      }
      // Sort keys computed once per tick, not once per comparison.
      const keyed = [...ticks.values()].map((t) => ({ t, micros: isoToMicros(t.time), id: BigInt(t.tickId) }));
      keyed.sort((a, b) => a.micros - b.micros || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return keyed.slice(0, limit).map((k) => k.t);
    },
  }),
);

async function readLakeTicks(
  lake: { dir: string; gate: LakeReadGate; signal: AbortSignal },
  symbol: string,
  from: Date,
  to: Date,
  dropped: Array<{ range_start: Date; range_end: Date }>,
  limit: number,
): Promise<RawTick[]> {
  const snapshot = await loadSnapshot(lake.dir);
  const ranges = dropped.map((d) => {
    const lo = new Date(Math.max(from.getTime(), d.range_start.getTime())).toISOString();
    const hi = new Date(Math.min(to.getTime(), d.range_end.getTime())).toISOString();
    return `("time" >= ${quoteLiteral(lo)}::TIMESTAMPTZ AND "time" < ${quoteLiteral(hi)}::TIMESTAMPTZ)`;
  });
  const where = `symbol = ${quoteLiteral(symbol)} AND (${ranges.join(' OR ')})`;
  const pruned = filesForRange(snapshot, from, to, { timeColumn: 'time', dayPartitionColumn: 'date' });
  const query = `SELECT symbol, strftime("time" AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ') AS time, price, volume, tick_id::VARCHAR AS tick_id
       FROM (${changeFeedCurrentStateSql(pruned, { where })}) AS s
      ORDER BY "time", tick_id LIMIT ${Number(limit)}`;
  // Through the lake read gate: reads take turns on DuckDB, so clients cannot stall the sync.
  const rows = await lake.gate.run(lake.signal, async (connection) => (await connection.runAndReadAll(query)).getRowObjects().map(toPlainRow));
  return rows.map((r) => ({
    symbol: String(r.symbol),
    time: String(r.time),
    price: Number(r.price),
    volume: Number(r.volume),
    tickId: String(r.tick_id),
    source: 'lake' as const,
  }));
}
