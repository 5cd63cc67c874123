import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext } from '../helpers/context.ts';
import { FUNCTIONS_FOLDER, migrate, readFunctionFiles, readHistory, readMigrations, SQL_DIR } from '../../src/db/migrate.ts';

const ctx = useTestContext('migrations', { migrate: false });
let dir: string;

beforeAll(async () => {
  dir = ctx.tempDir('migrations');
  fs.cpSync(SQL_DIR, dir, { recursive: true });
});

async function ledgers(): Promise<{ migrations: unknown[]; functions: unknown[] }> {
  return {
    migrations: (await ctx.db.query('SELECT version, file, checksum FROM lakets.schema_migrations ORDER BY version')).rows,
    functions: (await ctx.db.query('SELECT file, checksum FROM lakets.schema_functions ORDER BY file')).rows,
  };
}

describe('migrations', () => {
  it('applies every file of src/sql in order and records each with its checksum', async () => {
    const applied = await migrate(ctx.db.url, dir);
    const migrations = readMigrations(dir);
    const functionFiles = readFunctionFiles(dir);
    expect([...applied].sort()).toEqual([...migrations, ...functionFiles].map((f) => f.file).sort());
    // Numbered migrations in order; each function file right after the last migration it needs
    // (its number), before the next one, which may call it.
    const numbered = applied.filter((f) => !f.startsWith(FUNCTIONS_FOLDER));
    expect(numbered).toEqual(migrations.map((m) => m.file));
    for (const f of functionFiles) {
      const at = applied.indexOf(f.file);
      const before = applied.slice(0, at).filter((a) => !a.startsWith(FUNCTIONS_FOLDER));
      expect(before, f.file).toEqual(migrations.filter((m) => m.version <= f.version).map((m) => m.file));
    }
    expect(await ledgers()).toEqual({
      migrations: migrations.map((m) => ({ version: m.version, file: m.file, checksum: m.checksum })),
      functions: functionFiles.map((f) => ({ file: f.file, checksum: f.checksum })),
    });
  });

  it('is a no-op when re-run', async () => {
    const before = await ctx.db.query('SELECT * FROM lakets.schema_migrations ORDER BY version');
    const functionsBefore = await ctx.db.query('SELECT * FROM lakets.schema_functions ORDER BY file');
    expect(await migrate(ctx.db.url, dir)).toEqual([]);
    expect((await ctx.db.query('SELECT * FROM lakets.schema_migrations ORDER BY version')).rows).toEqual(before.rows);
    expect((await ctx.db.query('SELECT * FROM lakets.schema_functions ORDER BY file')).rows).toEqual(functionsBefore.rows);
  });

  it('survives concurrent start-ups migrating the same database', async () => {
    const results = await Promise.all([migrate(ctx.db.url, dir), migrate(ctx.db.url, dir), migrate(ctx.db.url, dir)]);
    expect(results).toEqual([[], [], []]);
  });

  it('re-applies a function file whose text changed, and only that one', async () => {
    const file = path.join(dir, FUNCTIONS_FOLDER, '020_pipeline.sql');
    fs.appendFileSync(file, `\nCREATE OR REPLACE FUNCTION lakets.migration_probe() RETURNS int LANGUAGE sql AS $$ SELECT 7 $$;\n`);
    expect(await migrate(ctx.db.url, dir)).toEqual([`${FUNCTIONS_FOLDER}/020_pipeline.sql`]);
    expect((await ctx.db.query('SELECT lakets.migration_probe() AS n')).rows).toEqual([{ n: 7 }]);
    fs.copyFileSync(path.join(SQL_DIR, FUNCTIONS_FOLDER, '020_pipeline.sql'), file);
    await ctx.db.query('DROP FUNCTION lakets.migration_probe()');
    expect(await migrate(ctx.db.url, dir)).toEqual([`${FUNCTIONS_FOLDER}/020_pipeline.sql`]);
  });

  it('applies a new migration and refuses an applied one whose file changed', async () => {
    fs.writeFileSync(path.join(dir, '999_extra.sql'), 'CREATE TABLE IF NOT EXISTS lakets.extra_probe (id int);\n');
    expect(await migrate(ctx.db.url, dir)).toEqual(['999_extra.sql']);
    fs.appendFileSync(path.join(dir, '001_core.sql'), '\n-- an edit after the fact\n');
    await expect(migrate(ctx.db.url, dir)).rejects.toThrow(/migration 001_core.sql was already applied .* applied migrations must not change/);
  });

  it('takes an applied migration under a new name, or with a checksum history.json lists, as the same one, and records today’s file', async () => {
    fs.copyFileSync(path.join(SQL_DIR, '001_core.sql'), path.join(dir, '001_core.sql'));
    const first = readMigrations(dir)[0]!;
    // a database that applied 001 when the file had another name and another text
    await ctx.db.query(`UPDATE lakets.schema_migrations SET file = '001_old_name.sql', checksum = 'feedface' WHERE version = '001'`);
    await expect(migrate(ctx.db.url, dir)).rejects.toThrow(/already applied as 001_old_name.sql/);
    const history = readHistory(dir);
    fs.writeFileSync(path.join(dir, 'history.json'), JSON.stringify({ ...history, superseded: { ...history.superseded, '001': ['feedface'] } }));
    expect(await migrate(ctx.db.url, dir)).toEqual([]);
    expect((await ctx.db.query(`SELECT file, checksum FROM lakets.schema_migrations WHERE version = '001'`)).rows).toEqual([
      { file: first.file, checksum: first.checksum },
    ]);
  });

  it('refuses a migration that takes a retired number', async () => {
    const [retired] = Object.keys(readHistory(dir).retired);
    expect(retired).toBeDefined();
    fs.writeFileSync(path.join(dir, `${retired}_reused.sql`), 'SELECT 1;\n');
    await expect(migrate(ctx.db.url, dir)).rejects.toThrow(new RegExp(`uses the retired number ${retired}`));
    fs.rmSync(path.join(dir, `${retired}_reused.sql`));
  });

  it('rolls back a failing migration entirely and reports it', async () => {
    fs.writeFileSync(path.join(dir, '998_broken.sql'), 'CREATE TABLE lakets.half_done (id int);\nSELECT no_such_function();\n');
    fs.rmSync(path.join(dir, '999_extra.sql'));
    await expect(migrate(ctx.db.url, dir)).rejects.toThrow(/migration 998_broken.sql failed: function no_such_function\(\) does not exist/);
    const { rows } = await ctx.db.query(`SELECT to_regclass('lakets.half_done') AS r`);
    expect(rows[0]!.r).toBeNull();
  });
});

describe('src/sql', () => {
  /** Names of the functions and aggregates a file creates by name (generated ones are made with format). */
  function definedIn(sql: string): string[] {
    return [...sql.matchAll(/CREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|AGGREGATE)\s+(lakets\.[a-z_0-9]+)\s*\(/gi)].map((m) => m[1]!.toLowerCase());
  }

  it('defines every function in one function file, and none in a numbered migration', () => {
    for (const m of readMigrations()) expect(definedIn(m.sql), m.file).toEqual([]);
    const owner = new Map<string, string>();
    for (const f of readFunctionFiles()) {
      for (const name of new Set(definedIn(f.sql))) {
        expect(owner.get(name), `${name} in ${f.file}`).toBeUndefined();
        owner.set(name, f.file);
      }
    }
    expect(owner.get('lakets.candles')).toBe(`${FUNCTIONS_FOLDER}/011_candles.sql`);
    expect(owner.get('lakets.refresh_rollup')).toBe(`${FUNCTIONS_FOLDER}/004_rollups.sql`);
  });
});
