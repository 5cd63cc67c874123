import { describe, expect, it } from 'vitest';
import { useTestContext } from '../helpers/context.ts';
import { insertTicks } from '../helpers/ticks.ts';
import { seededRandom } from '../../src/ticks/generator.ts';

const ctx = useTestContext('timeseries', { chunkInterval: '1 hour' });


const MINUTE = 60_000_000n;
const DAY = 86_400_000_000n;
function midnight(daysAgo: number): bigint {
  return ((BigInt(Date.now()) * 1000n) / DAY) * DAY - BigInt(daysAgo) * DAY;
}
function iso(micros: bigint): string {
  return new Date(Number(micros / 1000n)).toISOString();
}

describe('first / last aggregates', () => {
  it('pick the value at the smallest / largest ts, deterministically whatever the input order', async () => {
    const rand = seededRandom(7);
    const rows = Array.from({ length: 200 }, (_, i) => ({
      v: Math.round(rand() * 1000) / 10,
      ts: `2024-01-01 00:00:${String(Math.floor(rand() * 10)).padStart(2, '0')}+00`, // many ties
      tb: i + 1,
    }));
    const answers = new Set<string>();
    for (let k = 0; k < 4; k++) {
      const shuffled = [...rows].sort(() => rand() - 0.5);
      const { rows: r } = await ctx.db.query(
        `SELECT lakets.first(v, ts) AS f2, lakets.last(v, ts) AS l2, lakets.first(v, ts, tb) AS f3, lakets.last(v, ts, tb) AS l3
           FROM unnest($1::float8[], $2::timestamptz[], $3::bigint[]) WITH ORDINALITY u(v, ts, tb, o)`,
        [shuffled.map((x) => x.v), shuffled.map((x) => x.ts), shuffled.map((x) => x.tb)],
      );
      answers.add(JSON.stringify(r[0]));
    }
    expect(answers.size).toBe(1);
    const got = JSON.parse([...answers][0]!);
    const byKey = (a: (typeof rows)[0], b: (typeof rows)[0]) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : a.tb - b.tb);
    const sorted = [...rows].sort(byKey);
    expect(got.f3).toBe(sorted[0]!.v);
    expect(got.l3).toBe(sorted[sorted.length - 1]!.v);
    const minTs = sorted[0]!.ts;
    const maxTs = sorted[sorted.length - 1]!.ts;
    expect(got.f2).toBe(Math.min(...rows.filter((x) => x.ts === minTs).map((x) => x.v)));
    expect(got.l2).toBe(Math.max(...rows.filter((x) => x.ts === maxTs).map((x) => x.v)));
  });

  it('ignore rows without ts, work for several value types and as grouped aggregates', async () => {
    const { rows } = await ctx.db.query(
      `SELECT g, lakets.first(txt, ts) AS ft, lakets.last(n, ts) AS ln, lakets.first(i, ts, tb)::int AS fi, lakets.last(ts, ts) AS lt
         FROM (VALUES (1, 'b', 1.5::numeric, 10::bigint, '2024-01-01 00:00:02+00'::timestamptz, 1::bigint),
                      (1, 'a', 2.5, 20, '2024-01-01 00:00:01+00', 2),
                      (1, 'z', 9.5, 30, NULL, 3),
                      (2, 'c', 3.5, 40, '2024-01-01 00:00:05+00', 5),
                      (2, 'd', 4.5, 50, '2024-01-01 00:00:05+00', 4)) v(g, txt, n, i, ts, tb)
        GROUP BY g ORDER BY g`,
    );
    expect(rows).toEqual([
      { g: 1, ft: 'a', ln: '1.5', fi: 20, lt: new Date('2024-01-01T00:00:02Z') },
      { g: 2, ft: 'c', ln: '4.5', fi: 50, lt: new Date('2024-01-01T00:00:05Z') },
    ]);
  });
});

describe('gap-filling', () => {
  it('time_bucket_gapfill lists aligned buckets of [start, finish) and locf carries values forward', async () => {
    const { rows } = await ctx.db.query<{ b: Date }>(
      `SELECT b FROM lakets.time_bucket_gapfill('15 minutes', '2024-01-01 00:07:00+00', '2024-01-01 01:00:00+00') b`,
    );
    expect(rows.map((r) => r.b.toISOString())).toEqual(['2024-01-01T00:15:00.000Z', '2024-01-01T00:30:00.000Z', '2024-01-01T00:45:00.000Z']);
    const { rows: empty } = await ctx.db.query(`SELECT * FROM lakets.time_bucket_gapfill('1 minute', now(), now() - interval '1 hour')`);
    expect(empty).toHaveLength(0);
    await expect(ctx.db.query(`SELECT * FROM lakets.time_bucket_gapfill('0 minutes', now(), now())`)).rejects.toMatchObject({ code: '22023' });

    const { rows: filled } = await ctx.db.query<{ b: number; v: number | null; seeded: number }>(
      `SELECT b, lakets.locf(v) OVER (ORDER BY b) AS v, lakets.locf(v, 0::float8) OVER (ORDER BY b) AS seeded
         FROM (VALUES (1, NULL::float8), (2, 5), (3, NULL), (4, NULL), (5, 7), (6, NULL)) x(b, v) ORDER BY b`,
    );
    expect(filled.map((r) => [r.v, r.seeded])).toEqual([[null, 0], [5, 5], [5, 5], [5, 5], [7, 7], [7, 7]]);
  });

  it('candles_filled repeats the previous close in empty buckets, with volume 0', async () => {
    const D = midnight(3);
    await insertTicks(ctx.db.pool, [
      { time: D - 30n * MINUTE, symbol: 'NVDA', price: 10, volume: 1 }, // before the window
      { time: D + 2n * MINUTE + 1_000_000n, symbol: 'NVDA', price: 11, volume: 2 },
      { time: D + 2n * MINUTE + 2_000_000n, symbol: 'NVDA', price: 12, volume: 3 },
      { time: D + 5n * MINUTE, symbol: 'NVDA', price: 9, volume: 4 },
    ]);
    await ctx.db.query('SELECT * FROM lakets.refresh_rollup_cascade()');
    const { rows } = await ctx.db.query(
      `SELECT to_char(bucket AT TIME ZONE 'UTC', 'HH24:MI') AS m, open, high, low, close, volume, tick_count::int AS n, filled
         FROM lakets.candles_filled('NVDA', 'minute', $1, $2)`,
      [iso(D), iso(D + 7n * MINUTE)],
    );
    expect(rows).toEqual([
      { m: '00:00', open: 10, high: 10, low: 10, close: 10, volume: 0, n: 0, filled: true },
      { m: '00:01', open: 10, high: 10, low: 10, close: 10, volume: 0, n: 0, filled: true },
      { m: '00:02', open: 11, high: 12, low: 11, close: 12, volume: 5, n: 2, filled: false },
      { m: '00:03', open: 12, high: 12, low: 12, close: 12, volume: 0, n: 0, filled: true },
      { m: '00:04', open: 12, high: 12, low: 12, close: 12, volume: 0, n: 0, filled: true },
      { m: '00:05', open: 9, high: 9, low: 9, close: 9, volume: 4, n: 1, filled: false },
      { m: '00:06', open: 9, high: 9, low: 9, close: 9, volume: 0, n: 0, filled: true },
    ]);
    // no price before the window: leading empty buckets are left out
    const { rows: lead } = await ctx.db.query(`SELECT bucket FROM lakets.candles_filled('NVDA', 'hour', $1, $2)`, [iso(D - 5n * DAY), iso(D)]);
    expect(lead.length).toBe(1); // only the hour holding the first tick (23:00 the day before)
  });
});

describe('candles arguments', () => {
  it('accepts minute/hour/day (any case) or their intervals, and refuses the rest with 22023', async () => {
    for (const g of ['minute', 'HOUR', 'Day', '1 minute', '01:00:00', '1 day']) {
      await ctx.db.query(`SELECT * FROM lakets.candles('AAPL', $1, now() - interval '1 hour', now())`, [g]);
    }
    await expect(ctx.db.query(`SELECT * FROM lakets.candles('AAPL', 'week', now() - interval '1 hour', now())`)).rejects.toMatchObject({ code: '22023' });
    await expect(ctx.db.query(`SELECT * FROM lakets.candles('AAPL', '5 minutes', now() - interval '1 hour', now())`)).rejects.toMatchObject({ code: '22023' });
    await expect(ctx.db.query(`SELECT * FROM lakets.candles('AAPL', 'minute', now(), now() - interval '1 hour')`)).rejects.toMatchObject({ code: '22023' });
  });
});
