import type pg from 'pg';
import { expect } from 'vitest';
import { formatMicrosUtc } from '../../src/lake/lsn.ts';

/** A tick to insert; `time` in epoch microseconds so that microseconds survive. */
export interface TestTick {
  time: bigint;
  symbol: string;
  price: number;
  volume: number;
}

type Queryable = Pick<pg.Pool | pg.ClientBase, 'query'>;

/** Inserts ticks in ONE statement (one trigger firing), in the given order; returns their tick_ids. */
export async function insertTicks(q: Queryable, ticks: readonly TestTick[]): Promise<string[]> {
  if (ticks.length === 0) return [];
  const { rows } = await q.query<{ tick_id: string }>(
    `INSERT INTO stock_ticks (time, symbol, price, volume)
     SELECT t, s, p, v FROM unnest($1::timestamptz[], $2::text[], $3::float8[], $4::float8[]) WITH ORDINALITY u(t, s, p, v, o)
      ORDER BY o
     RETURNING tick_id`,
    [ticks.map((t) => formatMicrosUtc(t.time)), ticks.map((t) => t.symbol), ticks.map((t) => t.price), ticks.map((t) => t.volume)],
  );
  return rows.map((r) => r.tick_id);
}

export interface Candle {
  bucket: string;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
  tick_count: string;
  final?: boolean;
}

const GRANULARITY: Record<string, string> = { minute: '1 minute', hour: '1 hour', day: '1 day' };

/** Brute force: the candles aggregated straight from the raw ticks (bucket starts in [from, to)). */
export async function bruteCandles(q: Queryable, table: string, symbol: string, granularity: string, from: string, to: string): Promise<Candle[]> {
  const { rows } = await q.query<Candle>(
    `SELECT to_char(b AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS bucket, open, high, low, close, volume, tick_count::text AS tick_count
       FROM (SELECT date_bin($2::interval, time, '2000-01-01 00:00:00+00') AS b,
                    (array_agg(price ORDER BY time, tick_id))[1] AS open, max(price) AS high, min(price) AS low,
                    (array_agg(price ORDER BY time DESC, tick_id DESC))[1] AS close,
                    sum(volume) AS volume, count(*) AS tick_count
               FROM ${table}
              WHERE symbol = $1 AND time >= $3::timestamptz - $2::interval AND time < $4::timestamptz + $2::interval
              GROUP BY 1) x
      WHERE b >= $3::timestamptz AND b < $4::timestamptz
      ORDER BY b`,
    [symbol, GRANULARITY[granularity], from, to],
  );
  return rows;
}

/** candles() as served. */
export async function liveCandles(q: Queryable, symbol: string, granularity: string, from: string, to: string): Promise<Candle[]> {
  const { rows } = await q.query<Candle>(
    `SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS bucket, open, high, low, close, volume,
            tick_count::text AS tick_count, final
       FROM lakets.candles($1, $2, $3::timestamptz, $4::timestamptz)`,
    [symbol, granularity, from, to],
  );
  return rows;
}

/** Prices and counts exactly, volumes with a relative tolerance of 1e-9 (float8 sums, docs/ARCHITECTURE.md H4). */
export function expectSameCandles(actual: readonly Candle[], expected: readonly Candle[], label: string): void {
  const strip = (c: Candle) => ({ bucket: c.bucket, open: c.open, high: c.high, low: c.low, close: c.close, tick_count: c.tick_count });
  expect(actual.map(strip), label).toEqual(expected.map(strip));
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!.volume;
    const e = expected[i]!.volume;
    const rel = Math.abs(a - e) / Math.max(Math.abs(e), 1e-300);
    if (!(a === e || rel <= 1e-9)) {
      throw new Error(`${label}: volume of ${expected[i]!.bucket} is ${a}, expected ${e} (relative error ${rel})`);
    }
  }
}

/** A bar size as the SQL reads take it: unit, multiple, IANA time zone. */
export interface BarSize {
  unit: 'minute' | 'hour' | 'day' | 'week' | 'month';
  multiple: number;
  zone: string;
}

/**
 * The start of a tick's bar, written with Postgres' own calendar functions only (date_bin,
 * date_trunc in a zone): independent of the product's bucket functions. Right wherever local
 * midnight happens exactly once, which holds for UTC, America/New_York and Asia/Kolkata.
 */
function bruteBucketSql(size: BarSize): string {
  switch (size.unit) {
    case 'minute':
      return `date_bin(make_interval(mins => $2), time, '2000-01-01 00:00:00+00')`;
    case 'hour':
      return `date_bin(make_interval(hours => $2), time, '2000-01-01 00:00:00+00')`;
    case 'day':
      return `date_trunc('day', time, $3)`;
    case 'week':
      return `date_trunc('week', time, $3)`;
    case 'month':
      return `((date_trunc('year', time AT TIME ZONE $3)
                + make_interval(months => ((extract(month FROM time AT TIME ZONE $3)::integer - 1) / $2) * $2)) AT TIME ZONE $3)`;
  }
}

/** Brute force: the bars of a size aggregated straight from the raw ticks, bucket starts in [from, to). */
export async function bruteBars(q: Queryable, symbol: string, size: BarSize, from: string, to: string, table = 'stock_ticks'): Promise<Candle[]> {
  const { rows } = await q.query<Candle>(
    `SELECT to_char(b AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS bucket, open, high, low, close, volume, tick_count::text AS tick_count
       FROM (SELECT ${bruteBucketSql(size)} AS b,
                    (array_agg(price ORDER BY time, tick_id))[1] AS open, max(price) AS high, min(price) AS low,
                    (array_agg(price ORDER BY time DESC, tick_id DESC))[1] AS close,
                    sum(volume) AS volume, count(*) AS tick_count
               FROM ${table} WHERE symbol = $1 GROUP BY 1) x
      WHERE b >= $4::timestamptz AND b < $5::timestamptz AND $2::integer > 0 AND $3::text IS NOT NULL
      ORDER BY b`,
    [symbol, size.multiple, size.zone, from, to],
  );
  return rows;
}

/** lakets.candle_page as served, per symbol (bucket as text, ascending). */
export async function servedPage(
  q: Queryable,
  symbols: readonly string[],
  size: BarSize,
  page: { from?: string | null; to?: string | null; before?: string | null; limit: number; fill?: boolean },
): Promise<Map<string, Array<Candle & { filled: boolean }>>> {
  const { rows } = await q.query<Candle & { symbol: string; filled: boolean }>(
    `SELECT symbol, to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS bucket, open, high, low, close, volume,
            tick_count::text AS tick_count, final, filled
       FROM lakets.candle_page($1::text[], $2, $3, $4, $5::timestamptz, $6::timestamptz, $7::timestamptz, $8, $9)`,
    [symbols, size.unit, size.multiple, size.zone, page.from ?? null, page.to ?? null, page.before ?? null, page.limit, page.fill ?? false],
  );
  const bySymbol = new Map<string, Array<Candle & { filled: boolean }>>(symbols.map((s) => [s, []]));
  for (const { symbol, ...bar } of rows) bySymbol.get(symbol)!.push(bar);
  for (const bars of bySymbol.values()) bars.sort((a, b) => (a.bucket < b.bucket ? -1 : a.bucket > b.bucket ? 1 : 0));
  return bySymbol;
}
