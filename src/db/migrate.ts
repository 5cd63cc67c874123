// The schema of the lakets database, brought up to date at every start (src/sql/README.md).
//
// Two kinds of files:
// - numbered migrations (src/sql/NNN_name.sql): tables, types, indexes, data. Each is applied once,
//   in order, and recorded in lakets.schema_migrations by its number with its file name and
//   checksum; an applied migration never changes (the start is refused if it did), except through
//   src/sql/history.json, which lists the checksums a number's file had before its function
//   bodies moved out or it was renamed;
// - function files (src/sql/functions/NNN_name.sql): every function, each defined in one place with
//   CREATE OR REPLACE. A file is applied again whenever its checksum differs from the one recorded
//   in lakets.schema_functions. Its number is the last numbered migration it needs: on a database
//   being built it is applied right after that migration, before the next one (which may call it).

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const SQL_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'sql');
/** The function files, under the migrations' folder. */
export const FUNCTIONS_FOLDER = 'functions';
const HISTORY_FILE = 'history.json';

export class MigrationError extends Error {
  override name = 'MigrationError';
}

interface SqlFile {
  /** The number: the migration's identity, or the last migration a function file needs. */
  version: string;
  /** Relative to the migrations' folder. */
  file: string;
  sql: string;
  checksum: string;
}

export type Migration = SqlFile;
export type FunctionFile = SqlFile;

/** What earlier versions of numbered migrations looked like (src/sql/history.json). */
export interface MigrationHistory {
  /** Checksums a number's file had before, still accepted for a database that applied them. */
  superseded: Record<string, string[]>;
  /** Numbers whose file is gone (everything in it moved to function files): never used again. */
  retired: Record<string, string>;
}

const SQL_FILE = /^\d{3}_[a-z0-9_]+\.sql$/;

function readSqlFiles(dir: string, prefix = ''): SqlFile[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => SQL_FILE.test(f))
    .sort()
    .map((name) => {
      const sql = fs.readFileSync(path.join(dir, name), 'utf8');
      return { version: name.slice(0, 3), file: prefix + name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

export function readMigrations(dir: string = SQL_DIR): Migration[] {
  return readSqlFiles(dir);
}

export function readFunctionFiles(dir: string = SQL_DIR): FunctionFile[] {
  return readSqlFiles(path.join(dir, FUNCTIONS_FOLDER), `${FUNCTIONS_FOLDER}/`);
}

export function readHistory(dir: string = SQL_DIR): MigrationHistory {
  const file = path.join(dir, HISTORY_FILE);
  if (!fs.existsSync(file)) return { superseded: {}, retired: {} };
  const history = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<MigrationHistory>;
  return { superseded: history.superseded ?? {}, retired: history.retired ?? {} };
}

// Serialises concurrent start-ups against one database (two processes migrating at once).
const MIGRATION_LOCK = 74_211_001;

/**
 * Applies the pending numbered migrations in order and every function file that changed, each in
 * its own transaction with its ledger row. Returns the files applied. Refuses an applied migration
 * whose file changed (unless history.json lists its old checksum): the database would silently
 * diverge from the code otherwise.
 */
export async function migrate(connectionString: string, dir: string = SQL_DIR): Promise<string[]> {
  const migrations = readMigrations(dir);
  const functionFiles = readFunctionFiles(dir);
  const history = readHistory(dir);
  for (const m of migrations) {
    if (history.retired[m.version]) throw new MigrationError(`migration ${m.file} uses the retired number ${m.version}: take the next free one`);
  }
  const client = new pg.Client({ connectionString, application_name: 'lakets-migrate' });
  await client.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    await client.query(`
      CREATE SCHEMA IF NOT EXISTS lakets;
      CREATE TABLE IF NOT EXISTS lakets.schema_migrations (
        version    text PRIMARY KEY,
        file       text NOT NULL,
        checksum   text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE IF NOT EXISTS lakets.schema_functions (
        file       text PRIMARY KEY,
        checksum   text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    const { rows } = await client.query<{ version: string; file: string; checksum: string }>(
      'SELECT version, file, checksum FROM lakets.schema_migrations',
    );
    const ledger = new Map(rows.map((r) => [r.version, r]));
    const { rows: functionRows } = await client.query<{ file: string; checksum: string }>('SELECT file, checksum FROM lakets.schema_functions');
    const functionLedger = new Map(functionRows.map((r) => [r.file, r.checksum]));
    const pendingFunctions = functionFiles.filter((f) => functionLedger.get(f.file) !== f.checksum);

    const applyFunctionsBefore = async (version: string): Promise<void> => {
      while (pendingFunctions[0] && pendingFunctions[0].version < version) {
        const f = pendingFunctions.shift()!;
        await inTransaction(client, f.file, async () => {
          await client.query(f.sql);
          await client.query(
            `INSERT INTO lakets.schema_functions (file, checksum) VALUES ($1, $2)
             ON CONFLICT (file) DO UPDATE SET checksum = excluded.checksum, applied_at = now()`,
            [f.file, f.checksum],
          );
        });
        applied.push(f.file);
      }
    };

    for (const m of migrations) {
      const done = ledger.get(m.version);
      if (done) {
        if (done.checksum === m.checksum && done.file === m.file) continue;
        if (done.checksum === m.checksum || (history.superseded[m.version] ?? []).includes(done.checksum)) {
          // The same migration in today's words (its function bodies moved out, or renamed).
          await client.query('UPDATE lakets.schema_migrations SET file = $2, checksum = $3 WHERE version = $1', [m.version, m.file, m.checksum]);
          continue;
        }
        throw new MigrationError(
          `migration ${m.file} was already applied as ${done.file} with checksum ${done.checksum.slice(0, 12)}…, ` +
            `but the file now has checksum ${m.checksum.slice(0, 12)}…: applied migrations must not change; add a new migration instead`,
        );
      }
      // The functions this migration may call are those of the files numbered before it.
      await applyFunctionsBefore(m.version);
      await inTransaction(client, m.file, async () => {
        await client.query(m.sql);
        await client.query('INSERT INTO lakets.schema_migrations (version, file, checksum) VALUES ($1, $2, $3)', [
          m.version,
          m.file,
          m.checksum,
        ]);
      });
      applied.push(m.file);
    }
    await applyFunctionsBefore('\u{10FFFF}');
    // A function file that was renamed or removed leaves its functions (a numbered migration drops
    // them if they must go); its ledger row goes, so that a file of that name is applied anew.
    await client.query('DELETE FROM lakets.schema_functions WHERE NOT (file = ANY ($1::text[]))', [functionFiles.map((f) => f.file)]);
  } finally {
    // A connection that broke has released the lock with it: nothing to undo then.
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await client.end();
  }
  return applied;
}

async function inTransaction(client: pg.Client, file: string, work: () => Promise<void>): Promise<void> {
  await client.query('BEGIN');
  try {
    await work();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw new MigrationError(`migration ${file} failed: ${(err as Error).message}`);
  }
}
