import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { migrate } from '../../src/db/migrate.ts';
import { createDb, createPool, type Db } from '../../src/db/pool.ts';

export interface TestDatabase {
  name: string;
  url: string;
  adminUrl: string;
  pool: pg.Pool;
  db: Db;
  /** Runs one statement on a fresh connection of its own. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A database of its own for one test file, migrated, with the given chunk interval. */
export async function createTestDatabase(label: string, options: { migrate?: boolean; chunkInterval?: string } = {}): Promise<TestDatabase> {
  const adminUrl = inject('pgAdminUrl');
  const name = `t_${label.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${admin.escapeIdentifier(name)}`);
  await admin.end();
  const url = withDatabase(adminUrl, name);
  if (options.migrate !== false) {
    await migrate(url);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query(`SELECT lakets.set_chronotable_policy('stock_ticks', $1::interval)`, [options.chunkInterval ?? '1 minute']);
    await c.end();
  }
  const pool = createPool(url, { max: 6, applicationName: `test-${label}` });
  const db = createDb(pool);
  return {
    name,
    url,
    adminUrl,
    pool,
    db,
    query: (sql, params) => pool.query(sql, params as unknown[]),
    async drop() {
      await db.destroy().catch(() => undefined);
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      // A change-feed slot of this database (cdf_sync ran against it) would block the drop.
      await a.query(
        `SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = $1 AND active_pid IS NOT NULL`,
        [name],
      );
      await a.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, [name]).catch(() => undefined);
      await a.query(`DROP DATABASE IF EXISTS ${a.escapeIdentifier(name)} WITH (FORCE)`);
      await a.end();
    },
  };
}
