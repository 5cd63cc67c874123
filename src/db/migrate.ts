import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const SQL_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'sql');

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export interface Migration {
  version: string;
  file: string;
  sql: string;
  checksum: string;
}

export function readMigrations(dir: string = SQL_DIR): Migration[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((file) => {
      const sql = fs.readFileSync(path.join(dir, file), 'utf8');
      return { version: file.slice(0, 3), file, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

// Serialises concurrent start-ups against one database (two processes migrating at once).
const MIGRATION_LOCK = 74_211_001;

/**
 * Applies pending migrations in order, each in its own transaction, recording it in the ledger
 * with its checksum. A migration already applied whose file has changed is refused: the database
 * would silently diverge from the code otherwise.
 */
export async function migrate(connectionString: string, dir: string = SQL_DIR): Promise<string[]> {
  const migrations = readMigrations(dir);
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
      )`);
    const { rows } = await client.query<{ version: string; file: string; checksum: string }>(
      'SELECT version, file, checksum FROM lakets.schema_migrations',
    );
    const ledger = new Map(rows.map((r) => [r.version, r]));
    for (const m of migrations) {
      const done = ledger.get(m.version);
      if (done) {
        if (done.checksum !== m.checksum || done.file !== m.file) {
          throw new MigrationError(
            `migration ${m.file} was already applied as ${done.file} with checksum ${done.checksum.slice(0, 12)}…, ` +
              `but the file now has checksum ${m.checksum.slice(0, 12)}…: applied migrations must not change; add a new migration instead`,
          );
        }
        continue;
      }
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO lakets.schema_migrations (version, file, checksum) VALUES ($1, $2, $3)', [
          m.version,
          m.file,
          m.checksum,
        ]);
        await client.query('COMMIT');
        applied.push(m.file);
      } catch (err) {
        await client.query('ROLLBACK');
        throw new MigrationError(`migration ${m.file} failed: ${(err as Error).message}`);
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await client.end();
  }
  return applied;
}
