import { beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { useTestContext } from '../helpers/context.ts';
import { bruteCandles, expectSameCandles, insertTicks, liveCandles, type Candle, type TestTick } from '../helpers/ticks.ts';
import { seededRandom } from '../../src/ticks/generator.ts';

const ctx = useTestContext('rollups', { chunkInterval: '1 hour' });

const MINUTE = 60_000_000n;
const HOUR = 60n * MINUTE;
const DAY = 24n * HOUR;
const GRANULARITIES = ['minute', 'hour', 'day'] as const;

/** UTC midnight `days` days ago, in epoch microseconds. */
function midnight(daysAgo: number): bigint {
  const today = (BigInt(Date.now()) * 1000n) / DAY * DAY;
  return today - BigInt(daysAgo) * DAY;
}
function iso(micros: bigint): string {
  return new Date(Number(micros / 1000n)).toISOString();
}

beforeAll(async () => {
  // 1-hour chunks keep the partition manager's moves cheap for ticks spread over hours.
  await ctx.db.query('SELECT lakets.run_partition_manager()');
});

async function cascade() {
  const { rows } = await ctx.db.query<{ rollup: string; level: number; log_rows: string; buckets: string; rows_written: string; merged_buckets: string }>(
    'SELECT * FROM lakets.refresh_rollup_cascade()',
  );
  return rows;
}

/** Every candle of every granularity for the symbols, against the brute force over `table`. */
async function compareAll(symbols: readonly string[], from: bigint, to: bigint, label: string, table = 'stock_ticks') {
  let finals = 0;
  let live = 0;
  for (const symbol of symbols) {
    for (const g of GRANULARITIES) {
      const [actual, expected] = await Promise.all([
        liveCandles(ctx.db.pool, symbol, g, iso(from), iso(to)),
        bruteCandles(ctx.db.pool, table, symbol, g, iso(from), iso(to)),
      ]);
      expectSameCandles(actual, expected, `${label} ${symbol} ${g}`);
      for (const c of actual) c.final ? finals++ : live++;
    }
  }
  return { finals, live };
}

/**
 * Materialised rollup rows (what the refresh wrote) against the brute force, for every closed
 * bucket (before the rollup's watermark): open buckets are read live and materialised when they close.
 */
async function compareMaterialised(symbols: readonly string[], label: string, table = 'stock_ticks') {
  for (const [g, rollup] of [['minute', 'ohlcv_1min'], ['hour', 'ohlcv_1hour'], ['day', 'ohlcv_1day']] as const) {
    const { rows: [registry] } = await ctx.db.query<{ watermark: Date }>('SELECT watermark FROM lakets.rollups WHERE name = $1', [rollup]);
    const closedUntil = registry!.watermark.toISOString();
    for (const symbol of symbols) {
      const { rows } = await ctx.db.query<Candle>(
        `SELECT to_char(bucket AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS') AS bucket, open, high, low, close, volume, tick_count::text AS tick_count
           FROM ${rollup} WHERE symbol = $1 AND bucket < $2 ORDER BY bucket`,
        [symbol, closedUntil],
      );
      const expected = await bruteCandles(ctx.db.pool, table, symbol, g, '2000-01-01', closedUntil);
      expectSameCandles(rows, expected, `${label} materialised ${rollup} ${symbol}`);
    }
  }
}

describe('rollups: registry and DAG', () => {
  it('registers the demo rollups and refreshes them in topological order', async () => {
    const { rows } = await ctx.db.query<{ name: string; level: number; depends_on: string[]; refresh_order: number }>(
      'SELECT refresh_order, level, name, depends_on FROM lakets.show_rollup_dag()',
    );
    expect(rows.map((r) => [r.refresh_order, r.level, r.name, r.depends_on])).toEqual([
      [1, 0, 'ohlcv_1min', []],
      [2, 1, 'ohlcv_1hour', ['ohlcv_1min']],
      [3, 2, 'ohlcv_1day', ['ohlcv_1hour']],
    ]);
    const stats = await cascade();
    expect(stats.map((s) => s.rollup)).toEqual(['ohlcv_1min', 'ohlcv_1hour', 'ohlcv_1day']);
    // rollups are regular tables with the contract's columns
    const { rows: cols } = await ctx.db.query<{ attname: string }>(
      `SELECT attname FROM pg_attribute WHERE attrelid = 'public.ohlcv_1hour'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
    );
    expect(cols.map((c) => c.attname).slice(0, 8)).toEqual(['bucket', 'symbol', 'open', 'high', 'low', 'close', 'volume', 'tick_count']);
    const { rows: kind } = await ctx.db.query<{ relkind: string }>(`SELECT relkind FROM pg_class WHERE oid = 'public.ohlcv_1min'::regclass`);
    expect(kind[0]!.relkind).toBe('r');
  });

  it('refuses dependency cycles and unknown dependencies', async () => {
    const q = `SELECT date_bin('1 hour', bucket, '2000-01-01 00:00:00+00') AS bucket, symbol, sum(volume) AS volume FROM {source} AS s GROUP BY 1, 2`;
    await expect(ctx.db.query(`SELECT lakets.create_rollup('self_loop', 'ohlcv_1min', '1 hour', $1, ARRAY['self_loop'])`, [q])).rejects.toMatchObject({ code: '42P17' });
    await expect(ctx.db.query(`SELECT lakets.create_rollup('orphan', 'ohlcv_1min', '1 hour', $1, ARRAY['nope'])`, [q])).rejects.toMatchObject({ code: '42P01' });
    await expect(ctx.db.query(`SELECT lakets.set_rollup_dependencies('ohlcv_1min', ARRAY['ohlcv_1day'])`)).rejects.toMatchObject({ code: '42P17' });
    await expect(ctx.db.query(`SELECT lakets.set_rollup_dependencies('ohlcv_1hour', ARRAY['ohlcv_1hour'])`)).rejects.toMatchObject({ code: '42P17' });
    // nothing changed
    const { rows } = await ctx.db.query<{ name: string; depends_on: string[] }>(`SELECT name, depends_on FROM lakets.rollups ORDER BY name`);
    expect(rows).toEqual([
      { name: 'ohlcv_1day', depends_on: ['ohlcv_1hour'] },
      { name: 'ohlcv_1hour', depends_on: ['ohlcv_1min'] },
      { name: 'ohlcv_1min', depends_on: [] },
    ]);
  });

  it('installs one statement-level trigger per event on the source, and the log has no unique constraint', async () => {
    const { rows } = await ctx.db.query<{ tgname: string; tgtype: number }>(
      `SELECT tgname, tgtype FROM pg_trigger WHERE tgrelid = 'public.stock_ticks'::regclass AND tgname LIKE 'lakets_rollup_inv_%' ORDER BY tgname`,
    );
    expect(rows.map((r) => r.tgname)).toEqual(['lakets_rollup_inv_del', 'lakets_rollup_inv_ins', 'lakets_rollup_inv_upd']);
    for (const r of rows) expect(r.tgtype & 1).toBe(0); // not FOR EACH ROW
    const { rows: uq } = await ctx.db.query(
      `SELECT 1 FROM pg_index WHERE indrelid = 'lakets.rollup_invalidations'::regclass AND (indisunique OR indisprimary)`,
    );
    expect(uq).toHaveLength(0);
  });
});

describe('rollups: property test against the raw ticks', () => {
  it('every candle of every granularity equals the brute-force aggregate, through random ingest, corrections and refreshes', async () => {
    const rand = seededRandom(20241124);
    const symbols = ['AAPL', 'MSFT', 'NVDA'];
    const D = midnight(3); // a day boundary a few days ago
    const lo = D - 90n * MINUTE;
    const hi = D + 90n * MINUTE;
    const used: bigint[] = [];
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const randomTime = (): bigint => {
      const r = rand();
      if (r < 0.15) {
        // exactly on a day / hour / minute boundary
        return pick([D, D - HOUR, D + HOUR, lo + BigInt(Math.floor(rand() * 180)) * MINUTE]);
      }
      if (r < 0.27 && used.length > 0) return pick(used); // duplicate timestamp
      if (r < 0.37) return BigInt(Date.now()) * 1000n - BigInt(Math.floor(rand() * 150_000_000)); // live tail
      return lo + BigInt(Math.floor(rand() * Number(hi - lo)));
    };
    const from = D - DAY;
    const to = BigInt(Date.now()) * 1000n + DAY;
    let sawMixed = false;
    let sawLive = false;
    let refreshes = 0;

    for (let round = 0; round < 36; round++) {
      const op = rand();
      if (op < 0.5 || round < 2) {
        const n = 1 + Math.floor(rand() * 120);
        const ticks: TestTick[] = [];
        for (let i = 0; i < n; i++) {
          const time = randomTime();
          used.push(time);
          ticks.push({ time, symbol: pick(symbols), price: Math.round((100 + rand() * 20) * 100) / 100, volume: rand() * 1000 });
        }
        await insertTicks(ctx.db.pool, ticks); // random order: out-of-order and late within one statement
      } else if (op < 0.62) {
        const { rows } = await ctx.db.query<{ tick_id: string }>(`SELECT tick_id FROM stock_ticks WHERE symbol = ANY ($1) ORDER BY tick_id`, [symbols]);
        const ids = Array.from({ length: 1 + Math.floor(rand() * 5) }, () => pick(rows).tick_id);
        const shift = Math.floor(rand() * 240) - 120; // seconds, across bucket boundaries
        await ctx.db.query(
          `UPDATE stock_ticks SET price = price + 1.25, time = least(time + make_interval(secs => $2), now())
            WHERE tick_id = ANY ($1::bigint[])`,
          [ids, shift],
        );
      } else if (op < 0.7) {
        const { rows } = await ctx.db.query<{ tick_id: string }>(`SELECT tick_id FROM stock_ticks WHERE symbol = ANY ($1) ORDER BY tick_id`, [symbols]);
        const ids = Array.from({ length: 1 + Math.floor(rand() * 4) }, () => pick(rows).tick_id);
        await ctx.db.query(`DELETE FROM stock_ticks WHERE tick_id = ANY ($1::bigint[])`, [ids]);
      } else if (op < 0.95) {
        refreshes++;
        if (rand() < 0.6) await cascade();
        else await ctx.db.query('SELECT * FROM lakets.refresh_rollup($1)', [pick(['ohlcv_1min', 'ohlcv_1hour', 'ohlcv_1day'])]);
      } else {
        await ctx.db.query('SELECT lakets.run_partition_manager()');
      }
      const { finals, live } = await compareAll(symbols, from, to, `round ${round}`);
      if (finals > 0 && live > 0) sawMixed = true;
      if (live > 0) sawLive = true;
    }
    expect(refreshes).toBeGreaterThan(3);
    expect(sawMixed).toBe(true);
    expect(sawLive).toBe(true);

    // After a full cascade nothing is pending, the tables hold every closed bucket exactly, and
    // every closed bucket is final.
    await cascade();
    const { rows: pending } = await ctx.db.query<{ n: string }>('SELECT count(*) AS n FROM lakets.rollup_invalidations');
    expect(Number(pending[0]!.n)).toBe(0);
    await compareMaterialised(symbols, 'after cascade');
    const { rows: notFinal } = await ctx.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM lakets.candles('AAPL', 'minute', $1, date_bin('1 minute', now(), '2000-01-01') - interval '1 minute')
        WHERE NOT final`,
      [iso(from)],
    );
    expect(Number(notFinal[0]!.n)).toBe(0);
  });
});

describe('rollups: incremental refresh', () => {
  it('recomputes only the invalidated buckets and repairs minute, hour and day in one cascade', async () => {
    const sym = 'GOOGL';
    const D = midnight(4);
    const ticks: TestTick[] = [];
    for (let m = 0; m < 120; m++) ticks.push({ time: D + BigInt(m) * MINUTE + 1_000_000n, symbol: sym, price: 100 + m, volume: 1 });
    await insertTicks(ctx.db.pool, ticks);
    await cascade();
    const snapshot = async () =>
      new Map(
        (await ctx.db.query<{ bucket: Date; xmin: string }>(`SELECT bucket, xmin::text FROM ohlcv_1min WHERE symbol = $1`, [sym])).rows.map((r) => [
          r.bucket.toISOString(),
          r.xmin,
        ]),
      );
    const before = await snapshot();
    expect(before.size).toBe(120);

    // two late ticks into two minutes (one of them before the first tick of its minute: new open)
    await insertTicks(ctx.db.pool, [
      { time: D + 5n * MINUTE, symbol: sym, price: 1, volume: 2 },
      { time: D + 70n * MINUTE + 30_000_000n, symbol: sym, price: 999, volume: 3 },
    ]);
    // pending buckets are live already, before any refresh
    await compareAll([sym], D - DAY, D + DAY, 'pending');
    const stats = await cascade();
    const byName = Object.fromEntries(stats.map((s) => [s.rollup, s]));
    expect(Number(byName.ohlcv_1min!.buckets)).toBe(2);
    expect(Number(byName.ohlcv_1hour!.buckets)).toBe(2);
    expect(Number(byName.ohlcv_1day!.buckets)).toBe(1);
    const after = await snapshot();
    const rewritten = [...after].filter(([b, x]) => before.get(b) !== x).map(([b]) => b).sort();
    expect(rewritten).toEqual([iso(D + 5n * MINUTE), iso(D + 70n * MINUTE)]);
    await compareMaterialised([sym], 'incremental');
    await compareAll([sym], D - DAY, D + DAY, 'incremental');
    // an idle refresh touches nothing
    const idle = await cascade();
    expect(idle.every((s) => Number(s.buckets) === 0)).toBe(true);
  });

  it('advances watermarks to the last closed bucket and records the refresh', async () => {
    const { rows } = await ctx.db.query<{ name: string; watermark: Date; last_refresh_at: Date; last_refresh_ms: number; ok: boolean }>(
      `SELECT name, watermark, last_refresh_at, last_refresh_ms,
              watermark = date_bin(bucket_interval, watermark, '2000-01-01') AND watermark <= now()
                AND watermark > now() - 2 * bucket_interval AS ok
         FROM lakets.rollups ORDER BY name`,
    );
    for (const r of rows) {
      expect(r.ok, r.name).toBe(true);
      expect(r.last_refresh_at).toBeInstanceOf(Date);
      expect(r.last_refresh_ms).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('rollups: concurrency', () => {
  it('ingest is never blocked by a refresh, and an invalidation committed after the claim is not lost', async () => {
    const sym = 'AMZN';
    const D = midnight(2);
    await insertTicks(ctx.db.pool, [{ time: D + 10n * MINUTE, symbol: sym, price: 50, volume: 1 }]);
    await cascade();

    const refresher = new pg.Client({ connectionString: ctx.db.url });
    const writer = new pg.Client({ connectionString: ctx.db.url });
    await refresher.connect();
    await writer.connect();
    try {
      // 1. A writer's transaction is open (uncommitted tick) while a cascade runs: the cascade
      //    does not wait for it.
      await writer.query('BEGIN');
      await insertTicks(writer, [{ time: D + 10n * MINUTE + 5_000_000n, symbol: sym, price: 60, volume: 2 }]);
      await refresher.query(`SET statement_timeout = '5s'`);
      await refresher.query('SELECT * FROM lakets.refresh_rollup_cascade()');
      // 2. A refresh has claimed its rows and is still open; the writer's insert and commit go
      //    through without waiting on it.
      await refresher.query('BEGIN');
      await refresher.query(`SELECT * FROM lakets.refresh_rollup('ohlcv_1min')`);
      await writer.query(`SET statement_timeout = '5s'`);
      await insertTicks(writer, [{ time: D + 11n * MINUTE, symbol: sym, price: 70, volume: 3 }]);
      await writer.query('COMMIT');
      // The committed invalidations survive the refresh that commits afterwards.
      await refresher.query('COMMIT');
      const { rows } = await ctx.db.query<{ n: string }>(
        `SELECT count(*) AS n FROM lakets.rollup_invalidations WHERE rollup = 'ohlcv_1min' AND key = $1`,
        [sym],
      );
      expect(Number(rows[0]!.n)).toBeGreaterThanOrEqual(2);
      await compareAll([sym], D - DAY, D + DAY, 'after concurrent commit');
      await cascade();
      await compareMaterialised([sym], 'after concurrent commit');
      await compareAll([sym], D - DAY, D + DAY, 'after concurrent commit, refreshed');

      // 3. Refreshes of one rollup are serialised (advisory lock).
      await refresher.query('BEGIN');
      await refresher.query(`SELECT * FROM lakets.refresh_rollup('ohlcv_1hour')`);
      const second = ctx.db.query(`SELECT * FROM lakets.refresh_rollup('ohlcv_1hour')`);
      let waiting = false;
      for (let i = 0; i < 50 && !waiting; i++) {
        const { rows: w } = await ctx.db.query(`SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                                                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`);
        waiting = w.length > 0;
        if (!waiting) await new Promise((r) => setTimeout(r, 20));
      }
      expect(waiting).toBe(true);
      await refresher.query('COMMIT');
      await second;
    } finally {
      await writer.query('ROLLBACK').catch(() => undefined);
      await refresher.query('ROLLBACK').catch(() => undefined);
      await writer.end();
      await refresher.end();
    }
  });
});

describe('rollups: notifications', () => {
  it('notifies lakets_candles once per statement with the touched (symbol, minute) pairs, or resync', async () => {
    const listener = new pg.Client({ connectionString: ctx.db.url });
    await listener.connect();
    const received: string[] = [];
    listener.on('notification', (m) => {
      if (m.channel === 'lakets_candles') received.push(m.payload ?? '');
    });
    await listener.query('LISTEN lakets_candles');
    const settle = () => new Promise((r) => setTimeout(r, 200));
    try {
      const D = midnight(6);
      const ids = await insertTicks(ctx.db.pool, [
        { time: D + 1_000_000n, symbol: 'TSLA', price: 1, volume: 1 },
        { time: D + 2_000_000n, symbol: 'TSLA', price: 2, volume: 1 },
        { time: D + MINUTE, symbol: 'TSLA', price: 3, volume: 1 },
        { time: D + 3_000_000n, symbol: 'V', price: 4, volume: 1 },
      ]);
      await settle();
      expect(received).toHaveLength(1);
      const day = Number(D / 1_000_000n);
      expect(JSON.parse(received[0]!)).toEqual({ table: 'stock_ticks', keys: [['TSLA', day], ['TSLA', day + 60], ['V', day]] });

      // a correction moving a tick across minutes: old and new bucket, one notification
      received.length = 0;
      await ctx.db.query(`UPDATE stock_ticks SET time = time + interval '2 minutes' WHERE tick_id = $1`, [ids[3]]);
      await settle();
      expect(received).toHaveLength(1);
      expect(JSON.parse(received[0]!).keys).toEqual([['V', day], ['V', day + 120]]);

      // too many pairs for one payload: a resync marker, still one notification
      received.length = 0;
      const many: TestTick[] = Array.from({ length: 600 }, (_, i) => ({ time: D + BigInt(i) * MINUTE, symbol: 'TSLA', price: 5, volume: 1 }));
      await insertTicks(ctx.db.pool, many);
      await settle();
      expect(received).toHaveLength(1);
      expect(JSON.parse(received[0]!)).toEqual({ table: 'stock_ticks', resync: true });
    } finally {
      await listener.end();
    }
  });
});

describe('rollups: source chunk dropped by retention (docs/ARCHITECTURE.md H5)', () => {
  it('merges late ticks into the stored bucket instead of recomputing it from the survivors', async () => {
    const sym = 'JPM';
    const H = midnight(5) + 10n * HOUR; // one 1-hour chunk, only this test writes there
    const ticks: TestTick[] = [];
    for (let i = 0; i < 90; i++) ticks.push({ time: H + BigInt(i) * 40_000_000n, symbol: sym, price: 200 + (i % 13), volume: 1.5 + i });
    await insertTicks(ctx.db.pool, ticks);
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    await cascade();
    // the lake would hold the dropped rows: keep them aside for the brute force
    await ctx.db.query(`CREATE TABLE jpm_shadow AS SELECT * FROM stock_ticks WHERE symbol = $1`, [sym]);
    const { rows: ch } = await ctx.db.query<{ chunk_name: string }>(
      `SELECT chunk_name FROM lakets.chunks WHERE table_name = 'stock_ticks' AND range_start = $1 AND status = 'active'`,
      [iso(H)],
    );
    expect(ch).toHaveLength(1);
    const chunk = ch[0]!.chunk_name;
    // Retention is another slice: drop the chunk by hand the way it will.
    const c = new pg.Client({ connectionString: ctx.db.url });
    await c.connect();
    try {
      await c.query('BEGIN');
      await c.query(`SET LOCAL lakets.internal = 'on'`);
      await c.query(`ALTER TABLE stock_ticks DETACH PARTITION public.${chunk}`);
      await c.query(`DROP TABLE public.${chunk}`);
      await c.query(`UPDATE lakets.chunks SET status = 'dropped', dropped_at = now() WHERE chunk_name = $1 AND status = 'active'`, [chunk]);
      await c.query('COMMIT');
    } finally {
      await c.end();
    }
    const win = [H - DAY, H + DAY] as const;
    // Before any late tick: the stored candles still stand (nothing pending).
    await compareAll([sym], ...win, 'after drop', 'jpm_shadow');

    const late = async (batch: TestTick[]) => {
      const { rows } = await ctx.db.query(
        `INSERT INTO stock_ticks (time, symbol, price, volume)
         SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::float8[], $4::float8[]) RETURNING *`,
        [batch.map((x) => new Date(Number(x.time / 1000n)).toISOString()), batch.map((x) => x.symbol), batch.map((x) => x.price), batch.map((x) => x.volume)],
      );
      for (const r of rows) {
        await ctx.db.query(`INSERT INTO jpm_shadow (time, symbol, price, volume, tick_id) VALUES ($1, $2, $3, $4, $5)`, [r.time, r.symbol, r.price, r.volume, r.tick_id]);
      }
    };
    // late ticks into the dropped range: an existing minute (new high and new close), a new
    // minute, and one exactly on the chunk's start (new open of the hour)
    await late([
      { time: H + 2n * MINUTE + 59_000_000n, symbol: sym, price: 500, volume: 7 },
      { time: H + 58n * MINUTE, symbol: sym, price: 1, volume: 8 },
      { time: H, symbol: sym, price: 42, volume: 9 },
    ]);
    await compareAll([sym], ...win, 'late into dropped range, pending', 'jpm_shadow');
    const stats = await cascade();
    expect(Number(stats.find((s) => s.rollup === 'ohlcv_1min')!.merged_buckets)).toBe(3);
    await compareAll([sym], ...win, 'late into dropped range, refreshed', 'jpm_shadow');
    await compareMaterialised([sym], 'dropped range', 'jpm_shadow');

    // a second wave must not count the base twice
    await late([{ time: H + 2n * MINUTE + 1_000_000n, symbol: sym, price: 300, volume: 1 }]);
    await compareAll([sym], ...win, 'second wave, pending', 'jpm_shadow');
    await cascade();
    await compareMaterialised([sym], 'second wave', 'jpm_shadow');

    // the manager re-creates the range as a new generation and moves the late rows there
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    await compareAll([sym], ...win, 'new generation', 'jpm_shadow');
    // a correction of a surviving late tick in the dropped range
    await ctx.db.query(`DELETE FROM stock_ticks WHERE symbol = $1 AND price = 500`, [sym]);
    await ctx.db.query(`DELETE FROM jpm_shadow WHERE price = 500`);
    await compareAll([sym], ...win, 'correction in dropped range, pending', 'jpm_shadow');
    await cascade();
    await compareMaterialised([sym], 'correction in dropped range', 'jpm_shadow');
  });
});
