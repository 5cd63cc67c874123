import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnEntry, type Spawned } from '../helpers/processes.ts';
import { gql } from '../helpers/api.ts';
import { lakeDuplicateEvents, lakeTicks, sourceTicks } from '../helpers/lake.ts';
import { readCredentials, roleUrl } from '../../src/db/embedded/credentials.ts';

const ctx = useTestContext('startup', { migrate: false });
let tmp: string;

beforeAll(async () => {
  tmp = ctx.tempDir('startup');
  fs.chmodSync(tmp, 0o755);
});

async function ready(port: number, proc: Spawned): Promise<void> {
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`exited early:\n${proc.output()}`);
      try {
        return (await fetch(`http://127.0.0.1:${port}/ready`)).status === 200;
      } catch {
        return false;
      }
    },
    90_000,
    'the server to be ready',
  );
}

async function prices(port: number): Promise<Array<{ symbol: string; price: number }>> {
  const res = await gql(`http://127.0.0.1:${port}`, '{ latestPrices { symbol price } }');
  expect(res.errors).toBeUndefined();
  return res.data.latestPrices;
}

describe('npm start', { timeout: 240_000 }, () => {
  it('runs against DATABASE_URL without starting an embedded Postgres', async () => {
    const port = await freePort();
    const dataDir = path.join(tmp, 'unused');
    const proc = spawnEntry('demo/live/start.ts', {
      DATABASE_URL: ctx.db.url,
      PORT: String(port),
      LAKETS_DATA_DIR: dataDir,
      LAKETS_TICK_RATE: '200',
      LAKETS_BACKFILL: 'off',
      LOG_LEVEL: 'warn',
    });
    await ready(port, proc);
    await waitFor(async () => (await prices(port)).length === 10, 30_000, 'prices of all ten symbols');
    // no embedded Postgres: LAKETS_DATA_DIR holds only the lake
    await waitFor(() => fs.existsSync(path.join(dataDir, 'lake', 'stock_ticks', '_delta_log')), 30_000, 'the lake table');
    expect(fs.readdirSync(dataDir)).toEqual(['lake']);
    expect(proc.output()).toContain(`http://127.0.0.1:${port}/graphql`);
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
    const { rows } = await ctx.db.query<{ n: string }>('SELECT count(*) AS n FROM stock_ticks');
    expect(Number(rows[0]!.n)).toBeGreaterThan(0);
    const { rows: runs } = await ctx.db.query<{ job: string }>(`SELECT DISTINCT job FROM lakets.job_runs ORDER BY job`);
    expect(runs.map((r) => r.job)).toEqual(expect.arrayContaining(['partition_manager', 'stream_ticks']));
  });

  it('starts the embedded Postgres in LAKETS_DATA_DIR, stops it cleanly and resumes on the next start', async () => {
    const dataDir = path.join(tmp, 'embedded');
    const env = { DATABASE_URL: undefined, DATABASE_DIRECT_URL: undefined, LAKETS_DATA_DIR: dataDir, LAKETS_BACKFILL: 'off', LOG_LEVEL: 'warn' };
    const port = await freePort();
    const pgPort = String(await freePort());
    const first = spawnEntry('demo/live/start.ts', { ...env, PORT: String(port), LAKETS_PG_PORT: pgPort, LAKETS_TICK_RATE: '300' });
    await ready(port, first);
    await waitFor(async () => (await prices(port)).length === 10, 30_000, 'prices of all ten symbols');
    const before = await prices(port);
    // the API reads through a read-only role
    const credentials = readCredentials(dataDir)!;
    const apiRole = new pg.Client({ connectionString: roleUrl(Number(pgPort), credentials.api, 'lakets') });
    await apiRole.connect();
    const { rows: sessions } = await apiRole.query<{ usename: string }>(
      `SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = 'lakets-api'`,
    );
    expect(sessions.map((r) => r.usename)).toEqual(['lakets_api']);
    await expect(apiRole.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now(), 'AAPL', 1, 1)`)).rejects.toThrow(
      /read-only transaction/,
    );
    await apiRole.end();
    first.child.kill('SIGINT');
    expect(await first.exited).toBe(0);
    expect(fs.existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
    expect(fs.readFileSync(path.join(dataDir, 'postgres.log'), 'utf8')).toMatch(/database system is shut down/);

    // second start: same data, nothing streamed, the prices of the first run are still there
    const port2 = await freePort();
    const second = spawnEntry('demo/live/start.ts', { ...env, PORT: String(port2), LAKETS_PG_PORT: pgPort, LAKETS_TICK_RATE: '0' });
    await ready(port2, second);
    const after = await prices(port2);
    expect(after.length).toBe(10);
    const latestBefore = new Map(before.map((p) => [p.symbol, p.price]));
    for (const p of after) expect(typeof latestBefore.get(p.symbol)).toBe('number');
    // Across the Ctrl-C restart the lake lost and duplicated nothing: once the sync has caught up,
    // its current state equals the table exactly (no chunk is old enough to be dropped yet).
    const admin = new pg.Client({ connectionString: roleUrl(Number(pgPort), credentials.superuser, 'lakets') });
    await admin.connect();
    const { rows: wal } = await admin.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await waitFor(
      async () => (await admin.query(`SELECT committed_lsn >= $1::pg_lsn AS ok FROM lakets.cdf_state`, [wal[0]!.lsn])).rows[0]?.ok === true,
      60_000,
      'the sync to catch up',
    );
    const source = await sourceTicks(admin);
    const lake = await lakeTicks(path.join(dataDir, 'lake', 'stock_ticks'));
    expect(source.count).toBeGreaterThan(0);
    expect(lake.count).toBe(source.count);
    expect(lake.checksum).toBe(source.checksum);
    expect(await lakeDuplicateEvents(path.join(dataDir, 'lake', 'stock_ticks'))).toBe(0);
    await admin.end();
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(fs.readFileSync(path.join(dataDir, 'postgres.log'), 'utf8')).not.toMatch(/was not properly shut down/);
  });

  it('fails with one clear line when the Postgres port is taken', async () => {
    const blocker = net.createServer();
    const pgPort = await freePort();
    await new Promise<void>((r) => blocker.listen(pgPort, '127.0.0.1', () => r()));
    const proc = spawnEntry('demo/live/start.ts', {
      DATABASE_URL: undefined,
      LAKETS_DATA_DIR: path.join(tmp, 'port-taken'),
      LAKETS_PG_PORT: String(pgPort),
      PORT: String(await freePort()),
      LOG_LEVEL: 'warn',
    });
    expect(await proc.exited).toBe(1);
    blocker.close();
    const lines = proc.output().trim().split('\n');
    expect(lines.at(-1)).toMatch(new RegExp(`^lakets: port ${pgPort} for the embedded Postgres is already in use`));
    // nothing half-made is left behind: the data directory it had created is gone again
    expect(fs.existsSync(path.join(tmp, 'port-taken'))).toBe(false);
  });

  it('fails with one clear line when the data directory is unusable', async () => {
    const file = path.join(tmp, 'not-a-dir');
    fs.writeFileSync(file, 'x');
    const proc = spawnEntry('demo/live/start.ts', {
      DATABASE_URL: undefined,
      LAKETS_DATA_DIR: file,
      LAKETS_PG_PORT: String(await freePort()),
      PORT: String(await freePort()),
    });
    expect(await proc.exited).toBe(1);
    expect(proc.output().trim().split('\n').at(-1)).toBe(`lakets: LAKETS_DATA_DIR ${file} exists but is not a directory`);
  });
});

describe('npm run serve', { timeout: 240_000 }, () => {
  it('runs the same application without the dashboard, and stops cleanly', async () => {
    const port = await freePort();
    const proc = spawnEntry('src/main.ts', {
      DATABASE_URL: ctx.db.url,
      PORT: String(port),
      LAKETS_DATA_DIR: path.join(tmp, 'serve'),
      LAKETS_TICK_RATE: '0',
      LAKETS_BACKFILL: 'off',
      LOG_LEVEL: 'warn',
    });
    await ready(port, proc);
    expect((await gql(`http://127.0.0.1:${port}`, '{ assets { symbol } }')).data.assets).toHaveLength(10);
    // no dashboard page and no browser libraries: the service alone
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/vendor/lightweight-charts.js`)).status).toBe(404);
    expect(proc.output()).not.toContain('Dashboard:');
    proc.child.kill('SIGINT');
    expect(await proc.exited).toBe(0);
  });
});

describe('npm run jobs', { timeout: 120_000 }, () => {
  it('runs one job once against DATABASE_URL and exits 0', async () => {
    const proc = spawnEntry('jobs/cli.ts', { DATABASE_URL: ctx.db.url, LOG_LEVEL: 'info' }, ['partition_manager']);
    expect(await proc.exited).toBe(0);
    expect(proc.output()).toMatch(/"job":"partition_manager","status":"succeeded"/);
  });

  it('explains its usage for an unknown job', async () => {
    const proc = spawnEntry('jobs/cli.ts', { DATABASE_URL: ctx.db.url }, ['nope']);
    expect(await proc.exited).toBe(2);
    expect(proc.output()).toMatch(/usage: npm run jobs -- <partition_manager\|rollup_refresh\|tiering\|retention\|lake_compact\|lake_vacuum\|stream_ticks>/);
  });
});
