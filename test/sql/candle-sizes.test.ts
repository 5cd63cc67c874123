import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext } from '../helpers/context.ts';
import { bruteBars, expectSameCandles, insertTicks, servedPage, type BarSize, type Candle, type TestTick } from '../helpers/ticks.ts';
import { seededRandom } from '../../src/ticks/generator.ts';

/**
 * Bars of every size against brute force over the raw ticks: minute and hour multiples, and
 * calendar days, weeks and months in UTC, New York (across both daylight-saving changes of the
 * winter 2025/26) and Kolkata (+05:30, composed from minutes at its edges), through random late
 * and out-of-order ticks, corrections and deletions, before and after refreshes; paging by bars
 * across gaps; the feed's read.
 */
const ctx = useTestContext('candle_sizes', { chunkInterval: '7 days' });

const SYMBOLS = ['AAPL', 'MSFT'] as const;
const ZONES = ['UTC', 'America/New_York', 'Asia/Kolkata'] as const;
const MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
const START = Date.UTC(2025, 9, 20); // 2025-10-20
const END = Date.UTC(2026, 3, 10); // 2026-04-10
// Instants where bars of some size begin or end: both New York DST changes, New York and Kolkata
// local midnights, month and year starts, a Monday.
const EDGES = [
  Date.UTC(2025, 10, 2, 6), // New York falls back (02:00 EDT -> 01:00 EST)
  Date.UTC(2025, 10, 2, 4), // New York midnight before it
  Date.UTC(2025, 10, 3, 5), // the day after, 25 hours later
  Date.UTC(2026, 2, 8, 7), // New York springs forward
  Date.UTC(2026, 2, 8, 5), // a 23-hour day starts
  Date.UTC(2026, 2, 9, 4),
  Date.UTC(2025, 11, 31, 18, 30), // Kolkata new year
  Date.UTC(2026, 0, 1),
  Date.UTC(2026, 0, 1, 5),
  Date.UTC(2026, 1, 28, 18, 30), // Kolkata March
  Date.UTC(2026, 0, 5), // a Monday
  Date.UTC(2026, 0, 5, 5),
  Date.UTC(2026, 0, 4, 18, 30),
];
// A gap: no MSFT tick in it, so paging must reach across it.
const GAP = [Date.UTC(2025, 11, 10), Date.UTC(2026, 0, 20)] as const;

const SIZES: BarSize[] = [
  { unit: 'minute', multiple: 1, zone: 'UTC' },
  { unit: 'minute', multiple: 5, zone: 'UTC' },
  { unit: 'minute', multiple: 15, zone: 'UTC' },
  { unit: 'minute', multiple: 60, zone: 'UTC' },
  { unit: 'hour', multiple: 1, zone: 'UTC' },
  { unit: 'hour', multiple: 4, zone: 'UTC' },
  { unit: 'hour', multiple: 24, zone: 'UTC' },
  ...ZONES.flatMap((zone): BarSize[] => [
    { unit: 'day', multiple: 1, zone },
    { unit: 'week', multiple: 1, zone },
    { unit: 'month', multiple: 1, zone },
    { unit: 'month', multiple: 3, zone },
    { unit: 'month', multiple: 12, zone },
  ]),
];

const rand = seededRandom(20260308);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const iso = (ms: number) => new Date(ms).toISOString();
const label = (s: BarSize) => `${s.unit}×${s.multiple} ${s.zone}`;

function randomTicks(n: number, spread: () => number): TestTick[] {
  const ticks: TestTick[] = [];
  for (let i = 0; i < n; i++) {
    const symbol = pick(SYMBOLS);
    let ms = spread();
    if (symbol === 'MSFT' && ms >= GAP[0] && ms < GAP[1]) ms = GAP[0] - 1 - Math.floor(rand() * MS.day);
    // microseconds, and sometimes exactly on an edge
    const micros = BigInt(ms) * 1000n + (rand() < 0.2 ? 0n : BigInt(Math.floor(rand() * 1000)));
    ticks.push({ time: micros, symbol, price: Math.round((100 + rand() * 50) * 100) / 100, volume: Math.round(rand() * 1000) / 10 });
  }
  return ticks;
}

/** Anywhere in the range, or within minutes of an edge (either side). */
function spreadTime(): number {
  if (rand() < 0.45) return pick(EDGES) + Math.floor((rand() - 0.5) * 40 * MS.minute);
  return START + Math.floor(rand() * (END - START));
}

async function cascade(): Promise<void> {
  await ctx.db.query('SELECT * FROM lakets.refresh_rollup_cascade()');
}

/** Every size, both symbols in one call, against brute force over the whole range. */
async function compareEverySize(what: string): Promise<{ final: number; notFinal: number }> {
  let final = 0;
  let notFinal = 0;
  const to = iso(Date.now() + MS.day);
  for (const size of SIZES) {
    const served = await servedPage(ctx.db.pool, SYMBOLS, size, { from: iso(Date.UTC(2024, 0, 1)), to, limit: 5000 });
    for (const symbol of SYMBOLS) {
      const bars = served.get(symbol)!;
      expectSameCandles(bars, await bruteBars(ctx.db.pool, symbol, size, iso(Date.UTC(2024, 0, 1)), to), `${what}: ${symbol} ${label(size)}`);
      for (const b of bars) if (b.final) final++;
      else notFinal++;
    }
  }
  return { final, notFinal };
}

beforeAll(async () => {
  await ctx.db.query(`SELECT * FROM lakets.create_chunks_for_range('stock_ticks', $1, now() + interval '1 hour')`, [iso(START - 7 * MS.day)]);
});

describe('bars of every size equal brute force over the raw ticks', () => {
  it('while nothing is refreshed, after a refresh, with late and out-of-order ticks and corrections pending, and after refreshing those', async () => {
    // history, in shuffled statements (out of order within and across them), and a live tail
    for (let i = 0; i < 6; i++) await insertTicks(ctx.db.pool, randomTicks(500, spreadTime));
    await insertTicks(ctx.db.pool, randomTicks(40, () => Date.now() - Math.floor(rand() * 3 * MS.minute)));
    const pendingOnly = await compareEverySize('nothing refreshed');
    expect(pendingOnly.final).toBe(0);

    await cascade();
    const refreshed = await compareEverySize('refreshed');
    expect(refreshed.final).toBeGreaterThan(0);

    // late ticks into closed bars of every kind, an update moving ticks across edges, deletions
    await insertTicks(ctx.db.pool, randomTicks(150, spreadTime));
    await ctx.db.query(
      `UPDATE stock_ticks SET time = time + interval '50 minutes', price = price + 0.5
        WHERE tick_id IN (SELECT tick_id FROM stock_ticks ORDER BY tick_id LIMIT 25 OFFSET 300)`,
    );
    await ctx.db.query(`DELETE FROM stock_ticks WHERE tick_id IN (SELECT tick_id FROM stock_ticks ORDER BY tick_id DESC LIMIT 20 OFFSET 60)`);
    const mixed = await compareEverySize('late ticks and corrections pending');
    expect(mixed.final).toBeGreaterThan(0);
    expect(mixed.notFinal).toBeGreaterThan(0);

    await cascade();
    await compareEverySize('late ticks and corrections refreshed');
  });

  it('cuts New York days at local midnight, 23 and 25 hours long across the changes, and Kolkata days at 18:30 UTC', async () => {
    await insertTicks(ctx.db.pool, [
      { time: BigInt(Date.UTC(2026, 2, 8, 5)) * 1000n, symbol: 'AAPL', price: 101, volume: 1 },
      { time: BigInt(Date.UTC(2026, 2, 9, 3, 59, 59)) * 1000n, symbol: 'AAPL', price: 102, volume: 1 },
      { time: BigInt(Date.UTC(2026, 2, 9, 4)) * 1000n, symbol: 'AAPL', price: 103, volume: 1 },
    ]);
    const ny = await servedPage(ctx.db.pool, ['AAPL'], { unit: 'day', multiple: 1, zone: 'America/New_York' }, {
      from: iso(Date.UTC(2026, 2, 7)),
      to: iso(Date.UTC(2026, 2, 10)),
      limit: 10,
    });
    const starts = ny.get('AAPL')!.map((b) => b.bucket);
    expect(starts).toContain('2026-03-08T05:00:00'); // EST midnight, a 23-hour day
    expect(starts).toContain('2026-03-09T04:00:00'); // EDT midnight
    const { rows } = await ctx.db.query<{ b: Date; n: Date }>(
      `SELECT lakets.candle_bucket('day', 1, 'America/New_York', '2025-11-02T12:00:00Z') AS b,
              lakets.candle_bucket_next('day', 1, 'America/New_York', '2025-11-02T04:00:00Z') AS n`,
    );
    expect(rows[0]!.b.toISOString()).toBe('2025-11-02T04:00:00.000Z');
    expect(rows[0]!.n.toISOString()).toBe('2025-11-03T05:00:00.000Z'); // 25 hours
    const { rows: kolkata } = await ctx.db.query<{ b: Date }>(`SELECT lakets.candle_bucket('day', 1, 'Asia/Kolkata', '2026-01-01T18:29:59Z') AS b`);
    expect(kolkata[0]!.b.toISOString()).toBe('2025-12-31T18:30:00.000Z');
  });
});

describe('paging counts bars', () => {
  const PAGED: BarSize[] = [
    { unit: 'minute', multiple: 5, zone: 'UTC' },
    { unit: 'hour', multiple: 4, zone: 'UTC' },
    { unit: 'day', multiple: 1, zone: 'America/New_York' },
    { unit: 'week', multiple: 1, zone: 'Asia/Kolkata' },
    { unit: 'month', multiple: 1, zone: 'UTC' },
  ];

  it('pages back with before across gaps: every page holds limit bars until the last, an empty page ends it, together they are the brute force', async () => {
    // ticks deleted but not yet refreshed: their buckets still look as if they held ticks
    await ctx.db.query(`DELETE FROM stock_ticks WHERE symbol = 'MSFT' AND time >= $1 AND time < $2`, [iso(GAP[0] - 3 * MS.day), iso(GAP[0])]);
    for (const size of PAGED) {
      const expected = await bruteBars(ctx.db.pool, 'MSFT', size, iso(Date.UTC(2024, 0, 1)), iso(Date.now() + MS.day));
      const limit = size.unit === 'month' ? 2 : 7;
      const got: string[] = [];
      let before: string | null = null;
      for (let page = 0; page < 2000; page++) {
        const bars: Candle[] = (await servedPage(ctx.db.pool, ['MSFT'], size, { before, limit })).get('MSFT')!;
        if (bars.length === 0) break;
        const isLast = got.length + bars.length === expected.length;
        if (!isLast) expect(bars.length, `${label(size)}: page ${page} before ${before}`).toBe(limit);
        got.unshift(...bars.map((b) => b.bucket));
        before = `${bars[0]!.bucket}Z`;
      }
      expect(got, label(size)).toEqual(expected.map((b) => b.bucket));
    }
  });

  it('pages forward from a time, and to alone gives the newest bars before it', async () => {
    for (const size of PAGED) {
      const expected = await bruteBars(ctx.db.pool, 'MSFT', size, iso(Date.UTC(2024, 0, 1)), iso(Date.now() + MS.day));
      const firstAfterGap = expected.findIndex((b) => Date.parse(`${b.bucket}Z`) >= GAP[0]);
      const forward = (await servedPage(ctx.db.pool, ['MSFT'], size, { from: iso(GAP[0]), limit: 3 })).get('MSFT')!;
      expect(forward.map((b) => b.bucket), label(size)).toEqual(expected.slice(firstAfterGap, firstAfterGap + 3).map((b) => b.bucket));
      const backward = (await servedPage(ctx.db.pool, ['MSFT'], size, { to: iso(GAP[1]), limit: 3 })).get('MSFT')!;
      const lastBeforeEnd = expected.filter((b) => Date.parse(`${b.bucket}Z`) < GAP[1]).slice(-3);
      expect(backward.map((b) => b.bucket), label(size)).toEqual(lastBeforeEnd.map((b) => b.bucket));
    }
  });

  it('pages back over refreshed history (stored rows, nothing pending) and through a late tick, every bar equal to brute force', async () => {
    const sizes: BarSize[] = [
      { unit: 'minute', multiple: 5, zone: 'UTC' },
      { unit: 'minute', multiple: 1, zone: 'UTC' },
      { unit: 'hour', multiple: 4, zone: 'UTC' },
      { unit: 'minute', multiple: 60, zone: 'UTC' },
    ];
    const pageAll = async (size: BarSize, limit: number): Promise<Candle[]> => {
      const got: Candle[] = [];
      let before: string | null = null;
      for (let page = 0; page < 5000; page++) {
        const bars: Candle[] = (await servedPage(ctx.db.pool, ['AAPL'], size, { before, limit })).get('AAPL')!;
        if (bars.length === 0) return got;
        got.unshift(...bars);
        before = `${bars[0]!.bucket}Z`;
      }
      throw new Error('too many pages');
    };
    await cascade();
    for (const round of ['refreshed', 'a late tick pending'] as const) {
      for (const size of sizes) {
        const expected = await bruteBars(ctx.db.pool, 'AAPL', size, iso(Date.UTC(2024, 0, 1)), iso(Date.now() + MS.day));
        expect(expected.length, label(size)).toBeGreaterThan(100);
        expectSameCandles(await pageAll(size, 50), expected, `${round}: ${label(size)}`);
        // the newest page, the open tail included
        const newest = (await servedPage(ctx.db.pool, ['AAPL'], size, { limit: 40 })).get('AAPL')!;
        expectSameCandles(newest, expected.slice(-40), `${round}, newest: ${label(size)}`);
      }
      // a late tick into a closed minute in the middle of the history: pending until the next refresh
      await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ($1, 'AAPL', 4321.5, 3)`, [iso(START + Math.floor((END - START) / 2))]);
    }
  });

  it('serves a watch-list in one call, each symbol equal to its own page', async () => {
    const size: BarSize = { unit: 'hour', multiple: 4, zone: 'UTC' };
    const together = await servedPage(ctx.db.pool, SYMBOLS, size, { limit: 50 });
    for (const symbol of SYMBOLS) {
      const alone = (await servedPage(ctx.db.pool, [symbol], size, { limit: 50 })).get(symbol)!;
      expect(together.get(symbol)).toEqual(alone);
      expect(alone).toHaveLength(50);
    }
  });

  it('fills empty buckets with the previous close, limit consecutive buckets', async () => {
    const size: BarSize = { unit: 'day', multiple: 1, zone: 'America/New_York' };
    const filled = (await servedPage(ctx.db.pool, ['MSFT'], size, { before: iso(GAP[1]), limit: 20, fill: true })).get('MSFT')!;
    expect(filled).toHaveLength(20);
    const expected = await bruteBars(ctx.db.pool, 'MSFT', size, iso(Date.UTC(2024, 0, 1)), iso(GAP[1]));
    let carried = expected.filter((b) => b.bucket < filled[0]!.bucket).at(-1)!.close;
    for (const bar of filled) {
      const real = expected.find((b) => b.bucket === bar.bucket);
      if (real) {
        expect(bar.filled).toBe(false);
        expect(bar.close).toBe(real.close);
        carried = real.close;
      } else {
        expect(bar).toMatchObject({ filled: true, open: carried, high: carried, low: carried, close: carried, volume: 0, tick_count: '0' });
      }
    }
  });
});

describe('the live feed read', () => {
  it('reads the bars containing given instants, equal to the pages', async () => {
    const size: BarSize = { unit: 'week', multiple: 1, zone: 'America/New_York' };
    const page = (await servedPage(ctx.db.pool, ['AAPL'], size, { limit: 5 })).get('AAPL')!;
    const instants = page.map((b) => iso(Date.parse(`${b.bucket}Z`) + 3 * MS.day));
    const { rows } = await ctx.db.query(
      `SELECT symbol, to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS bucket, open, high, low, close, volume,
              tick_count::text AS tick_count, final
         FROM lakets.candle_bars_at($1::text[], $2::timestamptz[], 'week', 1, 'America/New_York') ORDER BY bucket`,
      [instants.map(() => 'AAPL'), instants],
    );
    expect(rows.map(({ symbol: _s, ...r }) => r)).toEqual(page.map(({ filled: _f, ...b }) => b));
  });

  it('refuses sizes it cannot serve, naming the argument', async () => {
    const cases: Array<[string, number, string, RegExp]> = [
      ['fortnight', 1, 'UTC', /granularity/],
      ['minute', 7, 'UTC', /multiple/],
      ['hour', 5, 'UTC', /multiple/],
      ['day', 2, 'UTC', /multiple/],
      ['month', 2, 'UTC', /multiple/],
      ['day', 1, 'Mars/Olympus_Mons', /time zone/],
    ];
    for (const [unit, multiple, zone, detail] of cases) {
      const err = await ctx.db
        .query(`SELECT * FROM lakets.candle_page('{AAPL}', $1, $2, $3, NULL, NULL, NULL, 10, false)`, [unit, multiple, zone])
        .then(() => undefined, (e: { code?: string; message: string; detail?: string }) => e);
      expect(err?.code, `${unit} ${multiple} ${zone}`).toBe('22023');
      expect(`${err?.message} ${err?.detail ?? ''}`).toMatch(detail);
    }
  });
});
