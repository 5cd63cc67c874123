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
