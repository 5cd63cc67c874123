import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { useTestContext } from '../helpers/context.ts';
import { copyTicks } from '../../src/ticks/tick-table.ts';
import { TickGenerator, nowMicros } from '../../src/ticks/generator.ts';

const ctx = useTestContext('routing');


async function chunks() {
  const { rows } = await ctx.db.query<{ chunk_name: string; status: string; row_count: string; last_write_lsn: string | null; generation: number; range_start: Date; range_end: Date }>(
    `SELECT chunk_name, status, row_count, last_write_lsn, generation, range_start, range_end FROM lakets.chunks ORDER BY range_start, generation`,
  );
  return rows;
}

async function partitionOf(time: string): Promise<string> {
  const { rows } = await ctx.db.query<{ p: string }>(
    `SELECT tableoid::regclass::text AS p FROM stock_ticks WHERE time = $1::timestamptz LIMIT 1`,
    [time],
  );
  return rows[0]!.p;
}

describe('ChronoTable partition routing', () => {
  it('premakes the current chunk and `premake` more ahead of now', async () => {
    const { rows } = await ctx.db.query<{ chunks_created: number }>('SELECT * FROM lakets.run_partition_manager()');
    expect(rows[0]!.chunks_created).toBeGreaterThanOrEqual(4);
    const { rows: ahead } = await ctx.db.query<{ n: string }>(
      `SELECT count(*) AS n FROM lakets.chunks WHERE range_start >= lakets.time_bucket('1 minute', now())`,
    );
    expect(Number(ahead[0]!.n)).toBeGreaterThanOrEqual(4);
    const again = await ctx.db.query<{ chunks_created: number }>('SELECT * FROM lakets.run_partition_manager()');
    expect(again.rows[0]!.chunks_created).toBe(0);
    // chunk names follow <table>_YYYYMMDD_HHMMSS of their start, in UTC
    for (const c of await chunks()) {
      const iso = c.range_start.toISOString();
      expect(c.chunk_name).toBe(`stock_ticks_${iso.slice(0, 10).replace(/-/g, '')}_${iso.slice(11, 19).replace(/:/g, '')}`);
    }
  });

  it('routes a current tick into its chunk and stamps last_write_lsn and row_count', async () => {
    // now(), not a moment earlier: the premade chunks start at the minute of the manager's run, and
    // "a second ago" can fall into the minute before it.
    const { rows: now } = await ctx.db.query<{ ts: string }>(`SELECT now()::text AS ts`);
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ($1, 'AAPL', 100, 5)`, [now[0]!.ts]);
    const p = await partitionOf(now[0]!.ts);
    expect(p).toMatch(/^stock_ticks_\d{8}_\d{6}$/);
    const c = (await chunks()).find((x) => x.chunk_name === p)!;
    expect(Number(c.row_count)).toBe(1);
    expect(c.last_write_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
  });

  it('catches a tick with no chunk in the default partition, and the manager moves it atomically', async () => {
    const late = '2020-03-04 05:06:07.123456+00';
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ($1, 'MSFT', 50, 1), ($1, 'MSFT', 51, 2)`, [late]);
    expect(await partitionOf(late)).toBe('stock_ticks_default');
    const lvcBefore = await ctx.db.query(`SELECT * FROM _lvc_stock_ticks WHERE symbol = 'MSFT'`);

    const { rows } = await ctx.db.query<{ chunks_created: number; rows_moved: string }>('SELECT * FROM lakets.run_partition_manager()');
    expect(Number(rows[0]!.rows_moved)).toBe(2);
    expect(await partitionOf(late)).toBe('stock_ticks_20200304_050600');
    const c = (await chunks()).find((x) => x.chunk_name === 'stock_ticks_20200304_050600')!;
    expect(Number(c.row_count)).toBe(2);
    // the move is not a change to the data: stamped for the lake gate, but no LVC effect
    expect(c.last_write_lsn).not.toBeNull();
    const lvcAfter = await ctx.db.query(`SELECT * FROM _lvc_stock_ticks WHERE symbol = 'MSFT'`);
    expect(lvcAfter.rows).toEqual(lvcBefore.rows);
    const { rows: def } = await ctx.db.query<{ n: string }>('SELECT count(*) AS n FROM stock_ticks_default');
    expect(Number(def[0]!.n)).toBe(0);
    // microseconds survive the move
    const { rows: exact } = await ctx.db.query<{ ts: string }>(`SELECT time::text AS ts FROM stock_ticks WHERE symbol = 'MSFT' LIMIT 1`);
    expect(exact[0]!.ts).toBe('2020-03-04 05:06:07.123456+00');
  });

  it('never shows a moved row twice or not at all to a concurrent reader', async () => {
    const base = Date.parse('2019-06-01T00:00:00Z');
    const values: string[] = [];
    for (let i = 0; i < 500; i++) values.push(`('${new Date(base + i * 7_000).toISOString()}', 'NVDA', ${100 + i}, 1)`);
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ${values.join(',')}`);
    const expected = 500;
    const reader = new pg.Client({ connectionString: ctx.db.url });
    await reader.connect();
    let stop = false;
    const seen: number[] = [];
    const reading = (async () => {
      while (!stop) {
        const { rows } = await reader.query<{ n: string }>(`SELECT count(*) AS n FROM stock_ticks WHERE symbol = 'NVDA' AND time < '2019-06-02'`);
        seen.push(Number(rows[0]!.n));
      }
    })();
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    await new Promise((r) => setTimeout(r, 50));
    stop = true;
    await reading;
    await reader.end();
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([expected]));
    const { rows } = await ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM lakets.chunks WHERE range_start >= '2019-06-01' AND range_start < '2019-06-02'`);
    expect(Number(rows[0]!.n)).toBe(59); // 500 ticks 7 s apart span 58.2 minutes
  });

  it('refuses DML and TRUNCATE aimed directly at a partition', async () => {
    const c = (await chunks())[0]!;
    await expect(ctx.db.query(`INSERT INTO stock_ticks_default (time, symbol, price, volume) VALUES (now(), 'AAPL', 1, 1)`)).rejects.toThrow(
      /direct INSERT on partition public.stock_ticks_default is not allowed/,
    );
    await expect(ctx.db.query(`DELETE FROM ${c.chunk_name}`)).rejects.toThrow(/direct DELETE on partition/);
    await expect(ctx.db.query(`UPDATE ${c.chunk_name} SET price = 1`)).rejects.toThrow(/direct UPDATE on partition/);
    await expect(ctx.db.query(`TRUNCATE ${c.chunk_name}`)).rejects.toThrow(/direct TRUNCATE on partition/);
  });

  it('refuses far-future ticks with a clear error and keeps the statement atomic', async () => {
    await expect(
      ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'TSLA', 10, 1), (now() + interval '1 day', 'TSLA', 99, 1)`),
    ).rejects.toThrow(/beyond now\(\) \+ max_future_skew/);
    const { rows } = await ctx.db.query(`SELECT * FROM stock_ticks WHERE symbol = 'TSLA'`);
    expect(rows).toHaveLength(0);
    const { rows: lvc } = await ctx.db.query(`SELECT * FROM _lvc_stock_ticks WHERE symbol = 'TSLA'`);
    expect(lvc).toHaveLength(0);
  });

  it('refuses malformed ticks with clear errors', async () => {
    await expect(ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'bad symbol', 1, 1)`)).rejects.toThrow(/check constraint/);
    await expect(ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'AAPL', 'NaN', 1)`)).rejects.toThrow(/check constraint/);
    await expect(ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'AAPL', -1, 1)`)).rejects.toThrow(/check constraint/);
  });

  it('gives a re-created range that was dropped a new generation', async () => {
    const name = 'stock_ticks_20200304_050600';
    await ctx.db.query(`BEGIN; SET LOCAL lakets.internal = 'on';
                   ALTER TABLE stock_ticks DETACH PARTITION ${name}; DROP TABLE ${name};
                   UPDATE lakets.chunks SET status = 'dropped', dropped_at = now() WHERE chunk_name = '${name}';
                   COMMIT;`);
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ('2020-03-04 05:06:30+00', 'MSFT', 52, 1)`);
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    const gens = (await chunks()).filter((c) => c.chunk_name === name);
    expect(gens.map((g) => [g.generation, g.status, Number(g.row_count)])).toEqual([
      [1, 'dropped', 2],
      [2, 'active', 1],
    ]);
  });

  it('clips new chunks against existing ones when the chunk interval changes', async () => {
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ('2018-01-01 10:00:30+00', 'V', 1, 1)`);
    await ctx.db.query('SELECT lakets.run_partition_manager()'); // a 1-minute chunk 10:00-10:01
    await ctx.db.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '1 hour')`);
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ('2018-01-01 10:30:00+00', 'V', 2, 1), ('2018-01-01 09:59:00+00', 'V', 3, 1)`);
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    const ranges = (await chunks())
      .filter((c) => c.range_start.toISOString().startsWith('2018-01-01'))
      .map((c) => [c.range_start.toISOString().slice(11, 16), c.range_end.toISOString().slice(11, 16)]);
    expect(ranges).toEqual([
      ['09:00', '10:00'],
      ['10:00', '10:01'],
      ['10:01', '11:00'],
    ]);
    await ctx.db.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '1 minute')`);
    const { rows } = await ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM stock_ticks WHERE symbol = 'V'`);
    expect(Number(rows[0]!.n)).toBe(3);
  });

  it('never fails an insert because of lifecycle DDL running at the same time', async () => {
    const gen = new TickGenerator(
      [
        { symbol: 'AAPL', basePrice: 100, volatility: 0.3 },
        { symbol: 'JPM', basePrice: 200, volatility: 0.2 },
      ],
      { seed: 3, lateShare: 0.2, maxLatenessMs: 600_000 },
    );
    const writer = new pg.Client({ connectionString: ctx.db.url });
    await writer.connect();
    let failures = 0;
    let written = 0;
    let stop = false;
    const writing = (async () => {
      while (!stop) {
        const batch = gen.batch(200, nowMicros(), 1_000_000n);
        try {
          await copyTicks(writer, batch);
          written += batch.length;
        } catch (err) {
          failures += 1;
          console.error('insert failed during DDL:', (err as Error).message);
        }
      }
    })();
    for (let i = 0; i < 15; i++) {
      // late ticks land in the default partition; each run moves them into new chunks with DDL
      await ctx.db.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '1 minute', 3)`);
      await ctx.db.query('SELECT lakets.run_partition_manager()');
    }
    stop = true;
    await writing;
    await writer.end();
    expect(failures).toBe(0);
    expect(written).toBeGreaterThan(0);
    await ctx.db.query('SELECT lakets.run_partition_manager()');
    // the chunk row counts kept by the triggers and the manager equal the real counts
    const { rows } = await ctx.db.query<{ chunk_name: string; row_count: string; real: string }>(`
      SELECT c.chunk_name, c.row_count, (SELECT count(*) FROM stock_ticks s WHERE s.tableoid = to_regclass(c.chunk_name))::text AS real
        FROM lakets.chunks c WHERE c.status = 'active'`);
    for (const r of rows) expect([r.chunk_name, r.row_count]).toEqual([r.chunk_name, r.real]);
  });
});
