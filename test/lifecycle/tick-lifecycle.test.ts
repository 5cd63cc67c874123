// Every tick the database accepts goes through the whole lifecycle, at both ends of the accepted
// time range too: 1900-01-01 00:00 UTC (the earliest), 1950 and the last microsecond of 1969
// (negative epoch times), and now() + max_future_skew (the latest). Each is chunked out of the
// default partition by the partition manager, synced to its Delta date partition, tiered and
// dropped by the real jobs through the durability gate; its candles stay served after the drop.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { fileLake, lakeTicks, sourceTicks } from '../helpers/lake.ts';
import { CdfSync } from '../../src/cdf/cdf-sync.ts';
import { runJobOnce, type Job } from '../../src/scheduler/job.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { retention } from '../../src/lifecycle/retention.ts';
import { rollupRefresh } from '../../src/lifecycle/rollup-refresh.ts';
import { tiering } from '../../src/lifecycle/tiering.ts';
import { loadSnapshot } from '../../src/lake/snapshot.ts';
import { parseLsn } from '../../src/lake/lsn.ts';
import { lakeTableDir, loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';

const ctx = useTestContext('tick_lifecycle');
let dataDir: string;
let sync: CdfSync | undefined;
let config: ReturnType<typeof loadConfig>;
const logger = createLogger('silent');

// Short chunks and skew so that the newest possible tick's chunk ages within seconds.
const CHUNK = '5 seconds';
const SKEW = '3 seconds';

interface TickRow {
  tick_id: string;
  time: Date;
  partition: string;
}

async function run(job: Job) {
  const outcome = await runJobOnce(ctx.db.url, job, config, logger);
  if (outcome.status !== 'succeeded') throw new Error(`${job.name} ${outcome.status}: ${'error' in outcome ? outcome.error.message : ''}`);
  return outcome.result.detail as Record<string, unknown>;
}

/** The live chunk (or, once dropped, the latest generation) holding a time. */
async function chunkAt(time: Date) {
  const { rows } = await ctx.db.query<{ chunk_name: string; status: string; range_end: Date; last_gate_result: string | null; row_count: string }>(
    `SELECT chunk_name, status, range_end, last_gate_result, row_count::text FROM lakets.chunks
      WHERE range_start <= $1 AND range_end > $1 ORDER BY generation DESC LIMIT 1`,
    [time],
  );
  return rows[0];
}

async function catchUp() {
  const { rows } = await ctx.db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  await sync!.waitForCommittedLsn(parseLsn(rows[0]!.lsn));
}

beforeAll(async () => {
  await ctx.db.query(`SELECT lakets.set_chronotable_policy('stock_ticks', $1::interval, NULL, $2::interval)`, [CHUNK, SKEW]);
  await ctx.db.query(`SELECT lakets.add_tiered_retention_policy('stock_ticks', '0 seconds', '0 seconds', 'tick_id')`);
  dataDir = ctx.tempDir('lifecycle');
  config = loadConfig({ LAKETS_DATA_DIR: dataDir });
});

afterAll(async () => {
  await sync?.stop();
});

describe('the lifecycle of ticks at the ends of the accepted range', () => {
  let ticks: TickRow[];
  const candlesBefore = new Map<string, unknown[]>();

  it('chunks the oldest ticks out of the default partition, and the newest possible one too', async () => {
    const { rows } = await ctx.db.query<TickRow>(
      `INSERT INTO stock_ticks (time, symbol, price, volume) VALUES
         ('1900-01-01 00:00:00+00', 'AAPL', 1.5, 10),
         ('1950-06-01 10:00:00.123456+00', 'AAPL', 2.5, 20),
         ('1950-06-01 10:00:01+00', 'MSFT', 3.5, 30),
         ('1969-12-31 23:59:59.999999+00', 'AAPL', 4.5, 40),
         (statement_timestamp() + $1::interval, 'AAPL', 5.5, 50)
       RETURNING tick_id, time, tableoid::regclass::text AS partition`,
      [SKEW],
    );
    ticks = rows;
    expect(ticks.slice(0, 4).map((k) => k.partition)).toEqual(Array(4).fill('stock_ticks_default'));

    const detail = await run(partitionManager);
    expect(detail.rowsMoved).toBeGreaterThanOrEqual(4);
    expect((await ctx.db.query(`SELECT count(*)::int AS n FROM stock_ticks_default`)).rows[0]!.n).toBe(0);
    const { rows: placed } = await ctx.db.query<{ tick_id: string; partition: string }>(
      `SELECT tick_id::text, tableoid::regclass::text AS partition FROM stock_ticks ORDER BY time`,
    );
    expect(placed.slice(0, 4).map((p) => p.partition)).toEqual([
      'stock_ticks_19000101_000000',
      'stock_ticks_19500601_100000',
      'stock_ticks_19500601_100000',
      'stock_ticks_19691231_235955',
    ]);
    for (const tick of ticks) {
      const c = await chunkAt(tick.time);
      expect(c, `chunk of ${tick.time.toISOString()}`).toMatchObject({ status: 'active' });
      expect(placed.find((p) => p.tick_id === tick.tick_id)!.partition).toBe(c!.chunk_name);
    }
  });

  it('syncs each tick to the Delta date partition of its UTC day', async () => {
    sync = new CdfSync({ url: ctx.db.url, lake: fileLake(dataDir), batchMaxMs: 200, statusIntervalMs: 200, logger });
    await sync.start();
    await catchUp();
    const tableDir = lakeTableDir(config.dataDir);
    const [source, lake] = await Promise.all([sourceTicks(ctx.db.pool), lakeTicks(tableDir)]);
    expect(lake.lines).toEqual(source.lines);
    expect(lake.lines.slice(0, 4).map((l) => l.split('|')[0])).toEqual([
      '1900-01-01T00:00:00.000000Z',
      '1950-06-01T10:00:00.123456Z',
      '1950-06-01T10:00:01.000000Z',
      '1969-12-31T23:59:59.999999Z',
    ]);
    const snapshot = await loadSnapshot(tableDir);
    const days = new Set(snapshot.files.map((f) => f.partitionValues['date']));
    const newest = ticks[4]!.time.toISOString().slice(0, 10);
    expect([...days].sort()).toEqual(['1900-01-01', '1950-06-01', '1969-12-31', newest]);
  });

  it('tiers and drops their chunks through the durability gate, and keeps serving their candles', async () => {
    const first = await run(rollupRefresh);
    expect(first).not.toHaveProperty('failedBuckets');
    for (const [from, to] of [['1900-01-01', '1900-01-02'], ['1950-06-01', '1950-06-02'], ['1969-12-31', '1970-01-01']] as const) {
      for (const g of ['minute', 'hour', 'day']) {
        const { rows } = await ctx.db.query(`SELECT * FROM lakets.candles('AAPL', $1, ($2 || ' 00:00:00+00')::timestamptz, ($3 || ' 00:00:00+00')::timestamptz)`, [g, from, to]);
        expect(rows.length, `${g} candles of ${from}`).toBe(1);
        expect(rows.every((r) => r.final)).toBe(true);
        candlesBefore.set(`${g} ${from}`, rows);
      }
    }
    // the newest tick's chunk has to end first (tier_after = 0)
    const newest = (await chunkAt(ticks[4]!.time))!;
    await waitFor(async () => Date.now() > newest.range_end.getTime() + 200, 15_000, 'the newest chunk to end');

    await run(tiering);
    for (const tick of ticks) {
      expect(await chunkAt(tick.time), `tiering ${tick.time.toISOString()}`).toMatchObject({ status: 'tiered', last_gate_result: 'tiered' });
    }
    // Retention drops a chunk only once every rollup bucket over it is closed: the minute of the
    // newest tick has to end too, and a refresh materialise it.
    const minuteEnd = Math.ceil((newest.range_end.getTime()) / 60_000) * 60_000;
    await waitFor(async () => Date.now() > minuteEnd + 200, 75_000, 'the minute of the newest chunk to end');
    await run(rollupRefresh);
    await run(retention);
    for (const tick of ticks) {
      const c = await chunkAt(tick.time);
      expect(c, `retention ${tick.time.toISOString()}`).toMatchObject({ status: 'dropped', last_gate_result: 'dropped' });
      expect((await ctx.db.query(`SELECT to_regclass($1) AS r`, [c!.chunk_name])).rows[0]!.r).toBeNull();
    }
    expect((await ctx.db.query(`SELECT count(*)::int AS n FROM stock_ticks WHERE tick_id = ANY ($1::bigint[])`, [ticks.map((k) => k.tick_id)])).rows[0]!.n).toBe(0);

    // the lake holds every one of them, and their candles are unchanged
    await catchUp();
    const lake = await lakeTicks(lakeTableDir(config.dataDir));
    const ids = new Set(ticks.map((k) => k.tick_id));
    expect(lake.lines.filter((l) => ids.has(l.split('|')[4]!))).toHaveLength(5);
    for (const [key, rows] of candlesBefore) {
      const [g, from] = key.split(' ') as [string, string];
      const to = { '1900-01-01': '1900-01-02', '1950-06-01': '1950-06-02', '1969-12-31': '1970-01-01' }[from];
      const { rows: after } = await ctx.db.query(`SELECT * FROM lakets.candles('AAPL', $1, ($2 || ' 00:00:00+00')::timestamptz, ($3 || ' 00:00:00+00')::timestamptz)`, [g, from, to]);
      expect(after, key).toEqual(rows);
    }
  }, 150_000);
});
