import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext } from '../helpers/context.ts';
import { fileLake, sourceTicks } from '../helpers/lake.ts';
import { CdfSync } from '../../src/cdf/cdf-sync.ts';
import { parseLsn } from '../../src/lake/lsn.ts';
import { runReadmeSnippet } from '../helpers/readme-snippet.ts';
import { createLogger } from '../../src/logger.ts';
import { lakeTableDir } from '../../src/config.ts';

/**
 * The README's DuckDB snippet, run as a user would paste it (docs/ARCHITECTURE.md H13: it must read the live
 * files from the log, never glob the folder), against a lake the real sync wrote.
 */
const ctx = useTestContext('snippet');
let dataDir: string;


beforeAll(async () => {
  dataDir = ctx.tempDir('snippet');
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  const sync = new CdfSync({ url: ctx.db.url, lake: fileLake(dataDir), batchMaxMs: 100, statusIntervalMs: 200, logger: createLogger('silent') });
  await sync.start();
  await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume)
                 SELECT now() - (g || ' ms')::interval, (ARRAY['AAPL','MSFT','NVDA'])[1 + g % 3], 100 + g, g FROM generate_series(1, 3000) g`);
  await ctx.db.query(`UPDATE stock_ticks SET price = price + 1 WHERE tick_id % 10 = 0`);
  await ctx.db.query(`DELETE FROM stock_ticks WHERE tick_id % 7 = 0`);
  // a stray Parquet file that no commit references: globbing would count it, the log does not
  const { rows } = await ctx.db.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  await sync.waitForCommittedLsn(parseLsn(rows[0]!.lsn));
  await sync.stop();
  const lake = path.join(dataDir, 'lake', 'stock_ticks');
  const day = fs.readdirSync(lake).find((d) => d.startsWith('date='))!;
  const some = fs.readdirSync(path.join(lake, day)).find((f) => f.endsWith('.parquet'))!;
  fs.copyFileSync(path.join(lake, day, some), path.join(lake, day, 'orphan-from-a-crashed-write.parquet'));
});

describe('README DuckDB snippet', () => {
  it('reads the current state of the lake exactly, ignoring files no commit references', async () => {
    const rows = await runReadmeSnippet(path.join(dataDir, 'lake', 'stock_ticks'));
    const { rows: expected } = await ctx.db.query<{ symbol: string; ticks: string; volume: number }>(
      `SELECT symbol, count(*)::text AS ticks, sum(volume) AS volume FROM stock_ticks GROUP BY symbol ORDER BY symbol`,
    );
    expect(rows.map((r) => ({ symbol: r.symbol, ticks: String(r.ticks), volume: Number(r.volume) }))).toEqual(
      expected.map((e) => ({ symbol: e.symbol, ticks: e.ticks, volume: e.volume })),
    );
    expect((await sourceTicks(ctx.db.pool)).count).toBe(expected.reduce((n, e) => n + Number(e.ticks), 0));
  });
});
