// `npm start` supervises its embedded Postgres, as real processes: a postmaster killed with
// SIGKILL is restarted and the API, the LISTEN hub, the jobs and the lake sync carry on; when it
// cannot be restarted the process exits 1 with one clear line; a killed Node side does not leave
// Postgres running (its watchdog stops it), and one left running anyway is taken over by the next
// start while a supervised one is never touched.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { readCredentials, roleUrl } from '../../src/db/embedded/credentials.ts';
import { startEmbeddedPostgres } from '../../src/db/embedded/postgres.ts';
import { isAlive, stopPostmaster } from '../../src/db/embedded/processes.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnEntry, type Spawned } from '../helpers/processes.ts';
import { collect, gql, wsClient } from '../helpers/api.ts';
import { waitFor } from '../helpers/context.ts';
import { lakeDuplicateEvents } from '../helpers/lake.ts';

let tmp: string;
const spawned: Spawned[] = [];
const dataDirs: string[] = [];

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-supervision-'));
  fs.chmodSync(tmp, 0o755);
});
afterAll(async () => {
  // Whatever a failed test left running: our children first, then any postmaster on our data dirs.
  for (const proc of spawned) if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
  for (const dir of dataDirs) {
    const pid = postmasterPid(dir);
    if (pid !== undefined && isAlive(pid)) await stopPostmaster(pid, path.join(dir, 'pg'));
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

interface Started {
  proc: Spawned;
  port: number;
  pgPort: number;
  dataDir: string;
}

async function start(name: string, env: Record<string, string> = {}, pgPort?: number): Promise<Started> {
  const dataDir = path.join(tmp, name);
  if (!dataDirs.includes(dataDir)) dataDirs.push(dataDir);
  const port = await freePort();
  const pg = pgPort ?? (await freePort());
  const proc = spawnEntry('demo/live/start.ts', {
    DATABASE_URL: undefined,
    DATABASE_DIRECT_URL: undefined,
    DATABASE_API_URL: undefined,
    LAKETS_DATA_DIR: dataDir,
    PORT: String(port),
    LAKETS_PG_PORT: String(pg),
    LAKETS_TICK_RATE: '0',
    // No history backfill: these tests are about the process, and a day of COPY only slows them.
    LAKETS_BACKFILL: 'off',
    LOG_LEVEL: 'warn',
    ...env,
  });
  spawned.push(proc);
  return { proc, port, pgPort: pg, dataDir };
}

async function ready({ port, proc }: Started): Promise<void> {
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

function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function supervisorRecord(dataDir: string): { pid: number; postmaster: number; watchdog: number } {
  return JSON.parse(fs.readFileSync(path.join(dataDir, 'supervisor.json'), 'utf8')) as { pid: number; postmaster: number; watchdog: number };
}

/** One query as the superuser on a fresh connection (the server may restart between two). */
async function adminQuery<R extends pg.QueryResultRow>(s: Started, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: roleUrl(s.pgPort, readCredentials(s.dataDir)!.superuser, 'lakets') });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function rowsSynced(s: Started): Promise<number> {
  const rows = await adminQuery<{ n: string }>(s, `SELECT rows_synced AS n FROM lakets.cdf_state WHERE table_name = 'stock_ticks'`).catch(() => []);
  return Number(rows[0]?.n ?? 0);
}

async function health(port: number): Promise<{ status: number; body: Record<string, unknown> } | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch {
    return undefined; // the process has exited
  }
}

async function latestPrices(port: number): Promise<Array<{ symbol: string; price: number }>> {
  const res = await gql(`http://127.0.0.1:${port}`, '{ latestPrices { symbol price } }');
  expect(res.errors).toBeUndefined();
  return res.data.latestPrices;
}

function lastLine(proc: Spawned): string {
  return proc.output().trim().split('\n').at(-1) ?? '';
}

describe('a supervised embedded Postgres', { timeout: 240_000 }, () => {
  it('is restarted after SIGKILL: /health says so meanwhile, and the API, LISTEN hub, jobs and lake sync carry on', async () => {
    const s = await start('crash', { LAKETS_TICK_RATE: '100', LAKETS_CDF_BATCH_MS: '500' });
    await ready(s);
    await waitFor(async () => (await latestPrices(s.port)).length === 10, 30_000, 'prices of all ten symbols');
    await waitFor(async () => (await rowsSynced(s)) > 0, 60_000, 'rows in the lake');
    const client = wsClient(`http://127.0.0.1:${s.port}`);
    const sub = collect<{ priceUpdated: { symbol: string; price: number } }>(client, `subscription { priceUpdated(symbols: ["AAPL"]) { symbol price } }`);
    await waitFor(() => sub.items.length > 0, 10_000, 'a first price update');

    const killed = postmasterPid(s.dataDir)!;
    const killedAt = new Date();
    process.kill(killed, 'SIGKILL');
    const seen: Array<{ status: number; body: Record<string, unknown> }> = [];
    await waitFor(
      async () => {
        const h = await health(s.port);
        if (h) seen.push(h);
        return h?.status === 200 && h.body['restarts'] === 1;
      },
      60_000,
      'health to recover after the restart',
    );
    const down = seen.find((h) => h.status === 503);
    expect(down?.body).toMatchObject({ status: 'unavailable', ok: false, database: 'restarting' });
    expect(String(down?.body['reason'])).toMatch(/Postgres exited unexpectedly \(killed by SIGKILL\)/);
    const restarted = postmasterPid(s.dataDir)!;
    expect(restarted).not.toBe(killed);
    expect(isAlive(killed)).toBe(false);

    // the API's pool dropped its dead clients
    expect((await latestPrices(s.port)).length).toBe(10);
    // the LISTEN hub reconnected: price updates flow again
    const updatesBefore = sub.items.length;
    await waitFor(() => sub.items.length > updatesBefore + 2, 30_000, 'price updates after the restart');
    // the lake sync reconnected and commits new rows
    const syncedAfterRestart = await rowsSynced(s);
    await waitFor(async () => (await rowsSynced(s)) > syncedAfterRestart, 60_000, 'rows reaching the lake after the restart');
    // the jobs run again (each run opens its own connection)
    await waitFor(
      async () =>
        (
          await adminQuery<{ n: string }>(
            s,
            `SELECT count(*) AS n FROM lakets.job_runs WHERE job = 'rollup_refresh' AND status = 'succeeded' AND started_at > $1`,
            [killedAt],
          )
        )[0]!.n !== '0',
      60_000,
      'a job run after the restart',
    );
    sub.dispose();
    await client.dispose();

    expect(s.proc.output()).toMatch(/embedded Postgres restarted after a crash/);
    s.proc.child.kill('SIGTERM');
    expect(await s.proc.exited).toBe(0);
    expect(await lakeDuplicateEvents(path.join(s.dataDir, 'lake', 'stock_ticks'))).toBe(0);
    expect(fs.existsSync(path.join(s.dataDir, 'pg', 'postmaster.pid'))).toBe(false);
  });

  it('that cannot be restarted (its port taken) makes npm start exit 1 with one clear line', async () => {
    const s = await start('port-stolen');
    await ready(s);
    // Something else on the port: it accepts connections and hangs up.
    const blocker = net.createServer((socket) => socket.destroy());
    try {
      process.kill(postmasterPid(s.dataDir)!, 'SIGKILL');
      await waitFor(
        () =>
          new Promise<boolean>((resolve) => {
            blocker.once('error', () => resolve(false));
            blocker.listen(s.pgPort, '127.0.0.1', () => resolve(true));
          }),
        5_000,
        'the Postgres port to be free for the blocker',
      );
      const statuses: number[] = [];
      while (s.proc.child.exitCode === null) {
        const h = await health(s.port);
        if (h) statuses.push(h.status);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(await s.proc.exited).toBe(1);
      expect(statuses).toContain(503);
      expect(lastLine(s.proc)).toMatch(
        new RegExp(`^lakets: embedded Postgres could not be restarted: 3 attempts within 60 s, the last: port ${s.pgPort} for the embedded Postgres is already in use`),
      );
    } finally {
      blocker.close();
    }
  });

  it('whose data directory is gone makes npm start exit 1 with one clear line', async () => {
    const s = await start('data-gone');
    await ready(s);
    const pgData = fs.realpathSync(path.join(s.dataDir, 'pg'));
    process.kill(postmasterPid(s.dataDir)!, 'SIGKILL');
    fs.rmSync(pgData, { recursive: true, force: true });
    expect(await s.proc.exited).toBe(1);
    expect(lastLine(s.proc)).toBe(`lakets: embedded Postgres stopped and cannot be restarted: its data directory ${pgData} is gone`);
  });
});

describe('when the Node side of npm start is killed', { timeout: 240_000 }, () => {
  it('its watchdog stops Postgres; a Postgres left anyway is taken over at the next start, a supervised one never', async () => {
    const pgPort = await freePort();
    const first = await start('orphan', { LAKETS_TICK_RATE: '100' }, pgPort);
    await ready(first);
    await waitFor(async () => (await latestPrices(first.port)).length === 10, 30_000, 'prices of all ten symbols');
    const a = supervisorRecord(first.dataDir);
    process.kill(a.pid, 'SIGKILL');
    await first.proc.exited;
    await waitFor(() => !isAlive(a.postmaster), 30_000, 'the watchdog to stop Postgres');

    // Node and its watchdog both killed (say, the whole container's processes but Postgres):
    const second = await start('orphan', {}, pgPort);
    await ready(second);
    const b = supervisorRecord(second.dataDir);
    process.kill(b.watchdog, 'SIGKILL');
    process.kill(b.pid, 'SIGKILL');
    await second.proc.exited;
    await new Promise((r) => setTimeout(r, 1_000));
    expect(isAlive(b.postmaster)).toBe(true);

    const third = await start('orphan', {}, pgPort);
    await ready(third);
    expect(third.proc.output()).toContain(`stopping the Postgres (pid ${b.postmaster}) a previous run left on`);
    expect(isAlive(b.postmaster)).toBe(false);
    expect((await latestPrices(third.port)).length).toBe(10);

    // A second npm start on the same data directory leaves the supervised server alone.
    const intruder = await start('orphan', {}, pgPort);
    expect(await intruder.proc.exited).toBe(1);
    expect(lastLine(intruder.proc)).toMatch(/^lakets: data directory .* is in use by a running lakets process \(pid \d+\)/);
    expect((await latestPrices(third.port)).length).toBe(10);

    third.proc.child.kill('SIGTERM');
    expect(await third.proc.exited).toBe(0);
  });
});

describe('a postmaster.pid left by a crash', { timeout: 120_000 }, () => {
  it('naming a pid the system gave to an unrelated process: that process is left alone and Postgres starts', async () => {
    const dataDir = path.join(tmp, 'stale-pid');
    dataDirs.push(dataDir);
    const port = await freePort();
    const first = await startEmbeddedPostgres({ dataDir, port, fast: true });
    const pidFile = path.join(dataDir, 'pg', 'postmaster.pid');
    const lines = fs.readFileSync(pidFile, 'utf8');
    await first.stop();
    const bystander = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      // the file as a SIGKILLed postmaster leaves it, but with the bystander's pid
      fs.writeFileSync(pidFile, [String(bystander.pid), ...lines.split('\n').slice(1)].join('\n'));
      const second = await startEmbeddedPostgres({ dataDir, port, fast: true });
      await second.stop();
      expect(bystander.exitCode).toBeNull();
      expect(isAlive(bystander.pid!)).toBe(true);
    } finally {
      bystander.kill('SIGKILL');
    }
  });
});
