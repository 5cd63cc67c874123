import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestContext } from '../helpers/context.ts';
import { gql } from '../helpers/api.ts';
import { fileLake, lakeTicks } from '../helpers/lake.ts';
import { CdfSync } from '../../src/cdf/cdf-sync.ts';
import { runJobOnce } from '../../src/scheduler/job.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { rollupRefresh } from '../../src/lifecycle/rollup-refresh.ts';
import { tiering } from '../../src/lifecycle/tiering.ts';
import { retention } from '../../src/lifecycle/retention.ts';
import { lakeTableDir, loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import type { RunningApi } from '../../src/main.ts';

/**
 * Query.ticks pages: newest first without a range, oldest first within one, continued by opaque
 * cursors of (microsecond time, tick id), across ticks of the same microsecond and across the
 * tiers (chunks dropped into the lake, then resident ones).
 */
const ctx = useTestContext('gql_ticks');
const logger = createLogger('silent');
let sync: CdfSync | undefined;
let api: RunningApi;

// Two days ago, minute-aligned: old enough to be tiered and dropped, inside the 31-day default window.
const OLD = Math.floor((Date.now() - 2 * 86_400_000) / 60_000) * 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

interface Tick {
  tickId: string;
  epochMicros: number;
  source: string;
  cursor: string;
  id: string;
}
const FIELDS = 'id cursor tickId epochMicros source';

/** Every V tick, newest first, from the copy kept before the drop (the brute force). */
async function allNewestFirst(): Promise<string[]> {
  const { rows } = await ctx.db.query<{ tick_id: string }>(`SELECT v.tick_id::text FROM v_ticks v ORDER BY v.time DESC, v.tick_id DESC`);
  return rows.map((r) => r.tick_id);
}

async function page(args: string): Promise<Tick[]> {
  const res = await gql(api.url, `{ ticks(symbol: "V", ${args}) { ${FIELDS} } }`);
  expect(res.errors, args).toBeUndefined();
  return res.data.ticks;
}

/** Every page of `args` with `limit`, following cursors until an empty page. */
async function pages(args: string, limit: number): Promise<Tick[][]> {
  const out: Tick[][] = [];
  let after: string | undefined;
  for (let i = 0; i < 100; i++) {
    const ticks = await page(`${args}${args ? ', ' : ''}limit: ${limit}${after ? `, after: "${after}"` : ''}`);
    if (ticks.length === 0) return out;
    out.push(ticks);
    after = ticks.at(-1)!.cursor;
  }
  throw new Error('more than 100 pages');
}

beforeAll(async () => {
  const dataDir = ctx.tempDir('ticks');
  const config = loadConfig({ LAKETS_DATA_DIR: dataDir });
  await ctx.db.query(`SELECT lakets.add_tiered_retention_policy('stock_ticks', '1 minute', '2 minutes', 'tick_id')`);
  // Old minutes (to be dropped into the lake), every third pair of ticks sharing one microsecond.
  await ctx.db.query(
    `INSERT INTO stock_ticks (time, symbol, price, volume)
     SELECT $1::timestamptz + ((g / 2) * 997 || ' ms')::interval + interval '0.000321 s', 'V', 100 + g, g
       FROM generate_series(1, 90) g`,
    [iso(OLD)],
  );
  await runJobOnce(ctx.db.url, partitionManager, config, logger);
  sync = new CdfSync({ url: ctx.db.url, lake: fileLake(dataDir), batchMaxMs: 200, statusIntervalMs: 200, logger });
  await sync.start();
  for (const job of [tiering, rollupRefresh, retention]) {
    const outcome = await runJobOnce(ctx.db.url, job, config, logger);
    expect(outcome.status).toBe('succeeded');
  }
  const { rows } = await ctx.db.query(`SELECT count(*)::int AS n FROM lakets.chunks WHERE status = 'dropped'`);
  expect(rows[0]!.n).toBeGreaterThan(0);
  // Resident ticks of the last minutes, some sharing a microsecond, and the brute-force copy of all.
  await ctx.db.query(`CREATE TABLE v_ticks AS SELECT * FROM stock_ticks WHERE false`);
  await ctx.db.query(
    `INSERT INTO stock_ticks (time, symbol, price, volume)
     SELECT date_trunc('second', now()) - ((g / 3) * 1500 || ' ms')::interval, 'V', 200 + g, g FROM generate_series(1, 40) g`,
  );
  const lake = await lakeTicks(lakeTableDir(dataDir));
  await ctx.db.query(`INSERT INTO v_ticks SELECT * FROM stock_ticks WHERE symbol = 'V'`);
  for (const line of lake.lines) {
    const [time, symbol, price, volume, tickId] = line.split('|');
    await ctx.db.query(`INSERT INTO v_ticks VALUES ($1, $2, $3, $4, $5)`, [time, symbol, price, volume, tickId]);
  }
  api = await ctx.startApi({ lake: config.lake.store });
}, 120_000);

afterAll(async () => {
  await sync?.stop();
});

describe('ticks', () => {
  it('without a range: newest first, over both tiers', async () => {
    const expected = await allNewestFirst();
    expect(expected).toHaveLength(130);
    const ticks = await page('limit: 1000');
    expect(ticks.map((t) => t.tickId)).toEqual(expected);
    expect(new Set(ticks.map((t) => t.source))).toEqual(new Set(['POSTGRES', 'LAKE']));
    expect(ticks[0]!.id).toBe(`Tick:${ticks[0]!.tickId}`);
  });

  it('pages newest first with cursors: full pages, across ties and tiers, together every tick once', async () => {
    const all = await pages('', 7);
    expect(all.slice(0, -1).every((p) => p.length === 7)).toBe(true);
    expect(all.flat().map((t) => t.tickId)).toEqual(await allNewestFirst());
  });

  it('pages oldest first within a range, and an explicit order turns a range around', async () => {
    const range = `from: "${iso(OLD - 60_000)}", to: "${iso(Date.now() + 60_000)}"`;
    const oldest = (await allNewestFirst()).reverse();
    const all = await pages(range, 11);
    expect(all.slice(0, -1).every((p) => p.length === 11)).toBe(true);
    expect(all.flat().map((t) => t.tickId)).toEqual(oldest);
    const newest = await pages(`${range}, order: NEWEST_FIRST`, 13);
    expect(newest.flat().map((t) => t.tickId)).toEqual([...oldest].reverse());
  });

  it('refuses a cursor it did not make, and keeps the other bounds', async () => {
    for (const after of ['nonsense', Buffer.from('t2:1:1').toString('base64url'), Buffer.from('t1:999999999999999999:1').toString('base64url'), 'x'.repeat(200)]) {
      const res = await gql(api.url, `{ ticks(symbol: "V", after: "${after}") { tickId } }`);
      expect(res.errors?.[0]?.extensions, after).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'after' });
    }
    const res = await gql(api.url, `{ ticks(symbol: "V", from: "2026-01-01T00:00:00Z", to: "2026-03-01T00:00:00Z") { tickId } }`);
    expect(res.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', argument: 'to' });
  });
});
