import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { migrate, readFunctionFiles, readHistory, readMigrations } from '../../src/db/migrate.ts';
import { expectedApplyOrder } from '../helpers/migrations.ts';
import { useTestContext } from '../helpers/context.ts';
import type { TestDatabase } from '../helpers/database.ts';
import { REPO_ROOT } from '../helpers/processes.ts';
import { bruteCandles, expectSameCandles, insertTicks, liveCandles } from '../helpers/ticks.ts';

// Databases made before the function files existed (test/fixtures/legacy-sql: every function inside
// the numbered migrations, the product's tables under "demo" names) must start with today's code,
// keep their data, and end up with exactly the schema a new database gets.

const LEGACY_DIR = path.join(REPO_ROOT, 'test', 'fixtures', 'legacy-sql');

/** What the migrator of that time did: each file once, in order, recorded with its checksum. */
async function migrateAsBefore(url: string, upTo = '999'): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS lakets;
      CREATE TABLE IF NOT EXISTS lakets.schema_migrations (
        version text PRIMARY KEY, file text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    for (const file of fs.readdirSync(LEGACY_DIR).filter((f) => f.endsWith('.sql') && f.slice(0, 3) < upTo).sort()) {
      const sql = fs.readFileSync(path.join(LEGACY_DIR, file), 'utf8');
      await client.query('BEGIN');
      await client.query(sql);
      await client.query('INSERT INTO lakets.schema_migrations (version, file, checksum) VALUES ($1, $2, $3)', [
        file.slice(0, 3),
        file,
        createHash('sha256').update(sql).digest('hex'),
      ]);
      await client.query('COMMIT');
    }
  } finally {
    await client.end();
  }
}

/**
 * Everything a migration defines, in a comparable form: functions (their full definitions),
 * aggregates, tables and their columns, constraints, indexes, triggers, types, sequences and
 * publications of the product's schemas. Chunks (partitions made at run time) are left out.
 */
async function schemaOf(t: TestDatabase): Promise<Record<string, unknown[]>> {
  const chunk = `c.relispartition AND c.relname NOT LIKE '%\\_default'`;
  const q = async (sql: string) => (await t.query(sql)).rows;
  return {
    functions: await q(`SELECT p.oid::regprocedure::text AS sig, pg_get_functiondef(p.oid) AS def
                          FROM pg_proc p WHERE p.pronamespace IN ('lakets'::regnamespace, 'public'::regnamespace) AND p.prokind <> 'a'
                         ORDER BY 1`),
    aggregates: await q(`SELECT a.aggfnoid::regprocedure::text AS sig, a.aggtransfn::text, a.aggfinalfn::text, a.aggcombinefn::text,
                                a.aggtranstype::regtype::text
                           FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
                          WHERE p.pronamespace = 'lakets'::regnamespace ORDER BY 1`),
    columns: await q(`SELECT c.oid::regclass::text AS rel, c.relkind, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
                             a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default
                        FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                        LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
                       WHERE c.relnamespace IN ('lakets'::regnamespace, 'public'::regnamespace, 'lakets_cdf'::regnamespace)
                         AND c.relkind IN ('r', 'p', 'v', 'm', 'c') AND NOT (${chunk})
                       ORDER BY 1, 3`),
    constraints: await q(`SELECT c.oid::regclass::text AS rel, k.conname, pg_get_constraintdef(k.oid) AS def
                            FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
                           WHERE c.relnamespace IN ('lakets'::regnamespace, 'public'::regnamespace, 'lakets_cdf'::regnamespace)
                             AND NOT (${chunk})
                           ORDER BY 1, 2`),
    indexes: await q(`SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS def
                        FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
                       WHERE c.relnamespace IN ('lakets'::regnamespace, 'public'::regnamespace, 'lakets_cdf'::regnamespace)
                         AND NOT (${chunk})
                       ORDER BY 1`),
    triggers: await q(`SELECT c.oid::regclass::text AS rel, g.tgname, pg_get_triggerdef(g.oid) AS def
                         FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
                        WHERE NOT g.tgisinternal AND NOT (${chunk})
                          AND c.relnamespace IN ('lakets'::regnamespace, 'public'::regnamespace, 'lakets_cdf'::regnamespace)
                        ORDER BY 1, 2`),
    types: await q(`SELECT t.oid::regtype::text AS name, t.typtype FROM pg_type t
                     WHERE t.typnamespace = 'lakets'::regnamespace AND t.typtype IN ('c', 'd', 'e') AND t.typelem = 0
                       AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
                     ORDER BY 1`),
    sequences: await q(`SELECT c.oid::regclass::text AS name FROM pg_class c
                         WHERE c.relkind = 'S' AND c.relnamespace IN ('lakets'::regnamespace, 'public'::regnamespace, 'lakets_cdf'::regnamespace)
                         ORDER BY 1`),
    publications: await q(`SELECT pubname, pubinsert, pubupdate, pubdelete FROM pg_publication ORDER BY 1`),
    functionLedger: await q(`SELECT file, checksum FROM lakets.schema_functions ORDER BY 1`),
  };
}

/**
 * Expects two databases' schemas to be equal, one kind of object at a time (a readable difference),
 * the database's own name (in its publication's name) left out.
 */
async function expectSameSchema(actual: TestDatabase, expected: TestDatabase): Promise<void> {
  const [a, e] = await Promise.all([schemaOf(actual), schemaOf(expected)]);
  const anonymised = (rows: unknown[], name: string) => JSON.parse(JSON.stringify(rows).replaceAll(name, 'DB')) as unknown[];
  for (const kind of Object.keys(e)) {
    const [got, want] = [anonymised(a[kind]!, actual.name), anonymised(e[kind]!, expected.name)];
    // The names first: a missing or left-over object shows as such, not as a shifted list.
    const names = (rows: unknown[]) => rows.map((r) => Object.values(r as Record<string, unknown>).slice(0, 2).join(' '));
    expect(names(got), kind).toEqual(names(want));
    expect(got, kind).toEqual(want);
  }
}

const DAY = 86_400_000;
const D = Date.UTC(2026, 6, 1);
const iso = (ms: number) => new Date(ms).toISOString();

describe('a database made before the function files', () => {
  // The context's own database is the new one the others must equal.
  const ctx = useTestContext('upgrade_fresh', { migrate: false });
  let legacy: TestDatabase;
  let older: TestDatabase;
  let fresh: TestDatabase;

  beforeAll(async () => {
    fresh = ctx.db;
    [legacy, older] = await Promise.all([
      ctx.newDatabase('upgrade_legacy', { migrate: false }),
      ctx.newDatabase('upgrade_older', { migrate: false }),
    ]);
    await migrate(fresh.url);
  });

  it('is taken over: its migrations accepted under today’s names, the function files applied, its data kept, the schema a new database’s', async () => {
    await migrateAsBefore(legacy.url);
    await legacy.query('SELECT lakets.run_partition_manager()');
    const ticks = Array.from({ length: 50 }, (_, i) => ({ time: BigInt(D + i * 7_919) * 1000n + 123n, symbol: i % 2 ? 'AAPL' : 'MSFT', price: 100 + i, volume: i + 1 }));
    await insertTicks(legacy.pool, ticks);
    await legacy.query('SELECT * FROM lakets.refresh_rollup_cascade()');

    const functionFiles = readFunctionFiles().map((f) => f.file);
    const applied = await migrate(legacy.url);
    // Every function file the old layout's migrations need, then what it did not have.
    expect(applied).toEqual(expectedApplyOrder('052'));
    // Its rollups, refreshed before, keep logging what their watermarks cover (065).
    const { rows: horizons } = await legacy.query<{ name: string; same: boolean }>(
      'SELECT name, lakets.rollup_log_horizon(name) = watermark AS same FROM lakets.rollups ORDER BY name',
    );
    expect(horizons).toEqual([
      { name: 'ohlcv_1day', same: true },
      { name: 'ohlcv_1hour', same: true },
      { name: 'ohlcv_1min', same: true },
    ]);

    const { rows: ledger } = await legacy.query<{ version: string; file: string; checksum: string }>(
      'SELECT version, file, checksum FROM lakets.schema_migrations ORDER BY version',
    );
    const retired = Object.keys(readHistory().retired);
    expect(ledger.filter((r) => !retired.includes(r.version))).toEqual(
      readMigrations().map((m) => ({ version: m.version, file: m.file, checksum: m.checksum })),
    );
    expect(ledger.filter((r) => retired.includes(r.version)).map((r) => r.version)).toEqual(retired);

    // the data, and what reads it
    expect(Number((await legacy.query('SELECT count(*) AS n FROM stock_ticks')).rows[0]!.n)).toBe(50);
    expect((await legacy.query(`SELECT price FROM _lvc_stock_ticks WHERE symbol = 'AAPL'`)).rows).toEqual([{ price: 149 }]);
    await insertTicks(legacy.pool, [{ time: BigInt(D + 3_600_000) * 1000n, symbol: 'AAPL', price: 300, volume: 3 }]);
    await legacy.query('SELECT * FROM lakets.refresh_rollup_cascade()');
    for (const g of ['minute', 'hour', 'day']) {
      expectSameCandles(
        await liveCandles(legacy.pool, 'AAPL', g, iso(D - DAY), iso(D + DAY)),
        await bruteCandles(legacy.pool, 'stock_ticks', 'AAPL', g, iso(D - DAY), iso(D + DAY)),
        `${g} candles after the upgrade`,
      );
    }

    await expectSameSchema(legacy, fresh);
    expect(await migrate(legacy.url)).toEqual([]);
  });

  it('is taken over from an older release too (before the shadow index and the tick bounds)', async () => {
    await migrateAsBefore(older.url, '021');
    const applied = await migrate(older.url);
    expect(applied).toContain('021_shadow_seq_index.sql');
    expect(applied).toContain('023_tick_bounds.sql');
    await expectSameSchema(older, fresh);
  });
});
