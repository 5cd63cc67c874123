import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from './helpers/database.ts';
import { migrate, readMigrations, SQL_DIR } from '../src/db/migrate.ts';

let t: TestDatabase;
let dir: string;

beforeAll(async () => {
  t = await createTestDatabase('migrations', { migrate: false });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-migrations-'));
  for (const f of fs.readdirSync(SQL_DIR)) fs.copyFileSync(path.join(SQL_DIR, f), path.join(dir, f));
});
afterAll(async () => {
  await t.drop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('migrations', () => {
  it('applies every file of src/sql in order and records each with its checksum', async () => {
    const applied = await migrate(t.url, dir);
    const files = readMigrations(dir);
    expect(applied).toEqual(files.map((f) => f.file));
    expect(applied).toEqual([...applied].sort());
    const { rows } = await t.query<{ version: string; file: string; checksum: string }>(
      'SELECT version, file, checksum FROM lakets.schema_migrations ORDER BY version',
    );
    expect(rows).toEqual(files.map((f) => ({ version: f.version, file: f.file, checksum: f.checksum })));
  });

  it('is a no-op when re-run', async () => {
    const before = await t.query('SELECT * FROM lakets.schema_migrations ORDER BY version');
    expect(await migrate(t.url, dir)).toEqual([]);
    const after = await t.query('SELECT * FROM lakets.schema_migrations ORDER BY version');
    expect(after.rows).toEqual(before.rows);
  });

  it('survives concurrent start-ups migrating the same database', async () => {
    const results = await Promise.all([migrate(t.url, dir), migrate(t.url, dir), migrate(t.url, dir)]);
    expect(results).toEqual([[], [], []]);
  });

  it('applies a new migration and refuses an applied one whose file changed', async () => {
    fs.writeFileSync(path.join(dir, '999_extra.sql'), 'CREATE TABLE IF NOT EXISTS lakets.extra_probe (id int);\n');
    expect(await migrate(t.url, dir)).toEqual(['999_extra.sql']);
    fs.appendFileSync(path.join(dir, '001_core.sql'), '\n-- an edit after the fact\n');
    await expect(migrate(t.url, dir)).rejects.toThrow(/migration 001_core.sql was already applied .* applied migrations must not change/);
  });

  it('rolls back a failing migration entirely and reports it', async () => {
    fs.copyFileSync(path.join(SQL_DIR, '001_core.sql'), path.join(dir, '001_core.sql'));
    fs.writeFileSync(path.join(dir, '998_broken.sql'), 'CREATE TABLE lakets.half_done (id int);\nSELECT no_such_function();\n');
    fs.rmSync(path.join(dir, '999_extra.sql'));
    await expect(migrate(t.url, dir)).rejects.toThrow(/migration 998_broken.sql failed: function no_such_function\(\) does not exist/);
    const { rows } = await t.query(`SELECT to_regclass('lakets.half_done') AS r`);
    expect(rows[0]!.r).toBeNull();
  });
});
