// The embedded Postgres' credentials and roles: generated passwords stored privately, the
// superuser used for set-up only, an app role without superuser powers for the jobs and the sync,
// and a read-only API role that has a statement timeout and a connection limit and cannot take
// the jobs' advisory locks. A real embedded server of its own, opened as `npm start` opens it.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { loadConfig, type Config } from '../../src/config.ts';
import { openDatabase, type DatabaseHandle } from '../../src/db/database.ts';
import { createLogger } from '../../src/logger.ts';
import { readCredentials, roleUrl, writeCredentials, type EmbeddedCredentials } from '../../src/db/embedded/credentials.ts';
import { startEmbeddedPostgres } from '../../src/db/embedded/postgres.ts';
import { runJobOnce } from '../../src/scheduler/job.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { runCdfSyncOnce } from '../../src/cdf/cdf-sync.ts';
import { freePort } from '../helpers/ports.ts';
import { createTestDatabase } from '../helpers/database.ts';
import { protectJobLocks } from '../../src/db/roles.ts';

const logger = createLogger('silent');
let tmp: string;
let dataDir: string;
let config: Config;
let db: DatabaseHandle;
let credentials: EmbeddedCredentials;

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-roles-'));
  fs.chmodSync(tmp, 0o755);
  dataDir = path.join(tmp, 'data'); // created by the server itself
  config = loadConfig({
    LAKETS_DATA_DIR: dataDir,
    LAKETS_PG_PORT: String(await freePort()),
    LAKETS_API_STATEMENT_TIMEOUT_MS: '1000',
    LAKETS_API_CONNECTION_LIMIT: '7',
  });
  db = await openDatabase(config, logger);
  credentials = readCredentials(dataDir)!;
});
afterAll(async () => {
  await db?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

async function connect(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

/** Runs the statements in order on one connection; the first error's message, or 'no error'. */
async function sqlError(url: string, ...statements: string[]): Promise<string> {
  let client: pg.Client | undefined;
  try {
    client = await connect(url);
    for (const sql of statements) await client.query(sql);
    return 'no error';
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client?.end();
  }
}

describe('credentials', () => {
  it('are generated per data directory and stored readable by their owner only', () => {
    const mode = (file: string) => fs.statSync(file).mode & 0o777;
    expect(mode(path.join(dataDir, 'credentials.json'))).toBe(0o600);
    expect(mode(path.join(dataDir, 'postgres.log'))).toBe(0o600);
    // the data directory is private: root gives the postgres group passage to pg/, nothing more
    expect(mode(dataDir) & 0o007).toBe(0);
    expect(mode(dataDir) & 0o040).toBe(0);
    const passwords = [credentials.superuser.password, credentials.app.password, credentials.api.password];
    expect(new Set(passwords).size).toBe(3);
    for (const password of passwords) {
      expect(password).not.toBe('lakets');
      expect(password.length).toBeGreaterThanOrEqual(40);
    }
    expect(fs.readFileSync(path.join(dataDir, 'postgres.log'), 'utf8')).not.toContain(credentials.app.password);
  });

  it('refuse the old constant password and admit the stored one', async () => {
    const port = config.embeddedPgPort;
    expect(await sqlError(roleUrl(port, { user: 'postgres', password: 'lakets' }, 'postgres'), 'SELECT 1')).toMatch(/password authentication failed/);
    expect(await sqlError(roleUrl(port, { user: 'lakets_api', password: 'lakets' }, 'lakets'), 'SELECT 1')).toMatch(/password authentication failed/);
    expect(await sqlError(roleUrl(port, credentials.superuser, 'postgres'), 'SELECT 1')).toBe('no error');
  });

  it('let a one-off job join the running server as the app role', async () => {
    const joined = await openDatabase(config, logger, { joinRunning: true });
    try {
      const client = await connect(joined.url);
      const { rows } = await client.query<{ user: string }>('SELECT current_user AS user');
      await client.end();
      expect(rows[0]!.user).toBe('lakets_app');
      expect(joined.embedded).toBeUndefined(); // it did not start a server of its own
    } finally {
      await joined.stop();
    }
  });

  it('of a cluster made with the old constant password are generated and replace it on its next start', async () => {
    const legacyDir = path.join(tmp, 'legacy');
    const port = await freePort();
    const first = await startEmbeddedPostgres({ dataDir: legacyDir, port, fast: true });
    const admin = await connect(first.adminUrl);
    await admin.query(`ALTER ROLE postgres PASSWORD 'lakets'`);
    await admin.end();
    await first.stop();
    fs.rmSync(path.join(legacyDir, 'credentials.json'));

    const second = await startEmbeddedPostgres({ dataDir: legacyDir, port, fast: true });
    try {
      const stored = readCredentials(legacyDir)!;
      expect(stored.superuser.password).not.toBe(first.credentials.superuser.password);
      expect(await sqlError(second.adminUrl, 'SELECT 1')).toBe('no error');
      expect(await sqlError(roleUrl(port, { user: 'postgres', password: 'lakets' }, 'postgres'), 'SELECT 1')).toMatch(/password authentication failed/);
    } finally {
      await second.stop();
    }
  });

  it('that do not open the cluster stop the start with one clear error', async () => {
    const dir = path.join(tmp, 'mismatch');
    const port = await freePort();
    const server = await startEmbeddedPostgres({ dataDir: dir, port, fast: true });
    await server.stop();
    const wrong = readCredentials(dir)!;
    writeCredentials(dir, { ...wrong, superuser: { user: 'postgres', password: 'x'.repeat(43) } });
    await expect(startEmbeddedPostgres({ dataDir: dir, port, fast: true })).rejects.toThrow(
      /superuser password in .*credentials\.json does not open the cluster/,
    );
    expect(fs.existsSync(path.join(dir, 'pg', 'postmaster.pid'))).toBe(false);
  });
});

describe('the app role (jobs, sync, tick streamer)', () => {
  it('is no superuser, owns every object of the database and cannot run programs', async () => {
    const client = await connect(db.url);
    try {
      const { rows } = await client.query<{ user: string; rolsuper: boolean; rolreplication: boolean }>(
        'SELECT current_user AS user, rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user',
      );
      expect(rows[0]).toEqual({ user: 'lakets_app', rolsuper: false, rolreplication: true });
      const { rows: foreign } = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE n.nspname IN ('public', 'lakets', 'lakets_cdf') AND c.relkind IN ('r', 'p', 'v', 'm')
            AND pg_get_userbyid(c.relowner) <> 'lakets_app'`,
      );
      expect(Number(foreign[0]!.n)).toBe(0);
    } finally {
      await client.end();
    }
    expect(await sqlError(db.url, `COPY (SELECT 1) TO PROGRAM 'true'`)).toMatch(/permission denied to COPY to or from an external program/);
    expect(await sqlError(db.url, 'CREATE TEMP TABLE t (x int)', `COPY t FROM PROGRAM 'echo 1'`)).toMatch(/permission denied/);
    expect(await sqlError(db.url, `COPY (SELECT 1) TO '/tmp/lakets-should-not-exist'`)).toMatch(/permission denied/);
    expect(await sqlError(db.url, `ALTER SYSTEM SET work_mem = '1GB'`)).toMatch(/permission denied/);
  });

  it('runs the jobs (partitions DDL, advisory locks) and the change-feed sync (replication slot)', async () => {
    const outcome = await runJobOnce(db.url, partitionManager, config, logger);
    expect(outcome.status).toBe('succeeded');
    const status = await runCdfSyncOnce({ url: db.directUrl, lake: config.lake.store, timeoutMs: 60_000 });
    expect(status.state).not.toBe('ERROR');
    const client = await connect(db.url);
    try {
      const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM pg_replication_slots WHERE database = 'lakets'`);
      expect(Number(rows[0]!.n)).toBe(1);
    } finally {
      await client.end();
    }
  });
});

describe('the API role', () => {
  it('reads, and writes nothing', async () => {
    const client = await connect(db.apiUrl);
    try {
      const { rows } = await client.query<{ user: string }>('SELECT current_user AS user');
      expect(rows[0]!.user).toBe('lakets_api');
      await client.query('SELECT count(*) FROM stock_ticks');
    } finally {
      await client.end();
    }
    // read-only by default, and by privileges even when it turns that default off
    const insert = `INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'AAPL', 1, 1)`;
    expect(await sqlError(db.apiUrl, insert)).toMatch(/read-only transaction/);
    expect(await sqlError(db.apiUrl, 'SET default_transaction_read_only = off', insert)).toMatch(/permission denied/);
    expect(await sqlError(db.apiUrl, 'SET default_transaction_read_only = off', 'CREATE TEMP TABLE scratch (x int)')).toMatch(/permission denied/);
  });

  it('cannot run programs or read server files', async () => {
    expect(await sqlError(db.apiUrl, `COPY (SELECT 1) TO PROGRAM 'true'`)).toMatch(/permission denied to COPY to or from an external program/);
    expect(await sqlError(db.apiUrl, 'SET default_transaction_read_only = off', `COPY stock_ticks FROM PROGRAM 'id'`)).toMatch(/permission denied/);
    expect(await sqlError(db.apiUrl, `SELECT pg_read_file('postgresql.conf')`)).toMatch(/permission denied/);
  });

  it("cannot take a job's advisory lock, so it cannot make job runs skip", async () => {
    for (const sql of [
      `SELECT pg_try_advisory_lock(hashtext('lakets.job'), hashtext('partition_manager'))`,
      `SELECT pg_advisory_lock(hashtext('lakets.job'), hashtext('rollup_refresh'))`,
      `SELECT pg_try_advisory_lock_shared(1)`,
      `SELECT pg_advisory_xact_lock(hashtext('lakets.refresh_rollup'), hashtext('ohlcv_1min'))`,
    ]) {
      expect(await sqlError(db.apiUrl, sql)).toMatch(/permission denied for function pg_(try_)?advisory/);
    }
  });

  it('has a statement timeout and a connection limit', async () => {
    const client = await connect(db.apiUrl);
    try {
      const { rows } = await client.query<{ statement_timeout: string }>('SHOW statement_timeout');
      expect(rows[0]!.statement_timeout).toBe('1s');
      await expect(client.query('SELECT pg_sleep(5)')).rejects.toThrow(/statement timeout/);
    } finally {
      await client.end();
    }
    const admin = await connect(roleUrl(config.embeddedPgPort, credentials.superuser, 'lakets'));
    try {
      const { rows } = await admin.query<{ rolconnlimit: number }>(`SELECT rolconnlimit FROM pg_roles WHERE rolname = 'lakets_api'`);
      expect(rows[0]!.rolconnlimit).toBe(7);
    } finally {
      await admin.end();
    }
  });
});

describe('with DATABASE_URL and a separate DATABASE_API_URL role', () => {
  it("a superuser's start keeps the API role from the jobs' advisory locks; a plain owner's start cannot (and warns)", async () => {
    const t = await createTestDatabase('external_roles', { migrate: false });
    const suffix = t.name.slice(-8);
    const apiRole = `lakets_t_api_${suffix}`;
    const ownerRole = `lakets_t_owner_${suffix}`;
    const password = 'p'.repeat(20);
    const admin = await connect(t.adminUrl);
    await admin.query(`CREATE ROLE ${apiRole} LOGIN PASSWORD '${password}'; CREATE ROLE ${ownerRole} LOGIN PASSWORD '${password}'`);
    await admin.query(`GRANT CONNECT ON DATABASE ${t.name} TO ${apiRole}, ${ownerRole}`);
    await admin.end();
    const as = (role: string) => {
      const u = new URL(t.url);
      u.username = role;
      u.password = password;
      return u.toString();
    };
    const lock = `SELECT pg_try_advisory_lock(hashtext('lakets.job'), hashtext('partition_manager'))`;
    try {
      // an owner that is no superuser cannot revoke functions it does not own
      expect(await protectJobLocks(as(ownerRole), as(apiRole), logger)).toBe(false);
      expect(await sqlError(as(apiRole), lock)).toBe('no error');
      // a superuser can: the API role loses the lock functions, the jobs' role keeps them
      expect(await protectJobLocks(t.url, as(apiRole), logger)).toBe(true);
      expect(await sqlError(as(apiRole), lock)).toMatch(/permission denied for function pg_try_advisory_lock/);
      expect(await sqlError(t.url, lock)).toBe('no error');
      // one role for both: nothing to tell apart, nothing changed
      expect(await protectJobLocks(as(ownerRole), as(ownerRole), logger)).toBe(false);
    } finally {
      await t.drop();
      const a = await connect(t.adminUrl);
      await a.query(`DROP ROLE IF EXISTS ${apiRole}; DROP ROLE IF EXISTS ${ownerRole}`);
      await a.end();
    }
  });
});
