// npm start as root from any folder: Postgres runs as the postgres system user, which cannot
// enter a clone under a 0700 folder (/root in containers and CI). The cluster and the binaries go
// where it can reach them, or the start fails at once with one line naming the folder and the fix.
// Real processes, a real copy of the repository (hard links) inside a 0700 folder.

import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RELOCATION_BASE } from '../../src/db/embedded/placement.ts';
import { isAlive, stopPostmaster } from '../../src/db/embedded/processes.ts';
import { freePort } from '../helpers/ports.ts';
import { REPO_ROOT, type Spawned } from '../helpers/processes.ts';
import { gql } from '../helpers/api.ts';
import { waitFor } from '../helpers/context.ts';

const isRoot = process.getuid?.() === 0;
let privateDir: string; // mode 0700, like /root
let publicDir: string; // mode 0755, like /tmp or /var/lib
let repo: string;
const relocatedHomes = new Set<string>();
const children: Spawned[] = [];

beforeAll(() => {
  if (!isRoot) return;
  privateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-private-'));
  fs.chmodSync(privateDir, 0o700);
  publicDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-public-'));
  fs.chmodSync(publicDir, 0o755);
  repo = path.join(privateDir, 'repo');
  fs.mkdirSync(repo);
  for (const entry of ['package.json', 'tsconfig.json', 'src', 'jobs', 'demo', 'node_modules']) {
    execFileSync('cp', ['-al', path.join(REPO_ROOT, entry), `${repo}/`]);
  }
});
afterAll(async () => {
  for (const child of children) if (child.child.exitCode === null) child.child.kill('SIGKILL');
  for (const dataDir of [path.join(repo ?? '/nonexistent', '.lakets'), path.join(publicDir ?? '/nonexistent', 'data')]) {
    try {
      const pid = Number(fs.readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
      if (isAlive(pid)) await stopPostmaster(pid, path.join(dataDir, 'pg'));
    } catch {
      // nothing running
    }
  }
  for (const home of relocatedHomes) fs.rmSync(home, { recursive: true, force: true });
  if (privateDir) fs.rmSync(privateDir, { recursive: true, force: true });
  if (publicDir) fs.rmSync(publicDir, { recursive: true, force: true });
});

/** `npm start` of the copied repository, from its folder. */
/** npm start in the copy, without the history backfill: this test is about where the cluster lives. */
function startCopy(env: Record<string, string | undefined>): Spawned {
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, DATABASE_URL: undefined, DATABASE_DIRECT_URL: undefined, LAKETS_DATA_DIR: undefined, LAKETS_BACKFILL: 'off', ...env })) {
    if (v !== undefined) merged[k] = v;
  }
  const child = spawn(process.execPath, ['--import', 'tsx', 'demo/live/start.ts'], { cwd: repo, env: merged, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const spawned = { child, output: () => out, exited };
  children.push(spawned);
  return spawned;
}

async function readyWithPrices(port: number, proc: Spawned): Promise<void> {
  await waitFor(
    async () => {
      if (proc.child.exitCode !== null) throw new Error(`exited early:\n${proc.output()}`);
      try {
        if ((await fetch(`http://127.0.0.1:${port}/ready`)).status !== 200) return false;
        const res = await gql(`http://127.0.0.1:${port}`, '{ latestPrices { symbol } }');
        return (res.data?.latestPrices?.length ?? 0) === 10;
      } catch {
        return false;
      }
    },
    120_000,
    'the server to be ready with prices',
  );
}

function postmasterOf(pgDir: string): { pid: number; exe: string; uid: number } {
  const pid = Number(fs.readFileSync(path.join(pgDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  return { pid, exe: fs.readlinkSync(`/proc/${pid}/exe`), uid: fs.statSync(`/proc/${pid}`).uid };
}

const postgresUid = () => Number(execFileSync('id', ['-u', 'postgres']).toString().trim());

describe.skipIf(!isRoot)('npm start as root', { timeout: 300_000 }, () => {
  it('in a clone under a 0700 folder: the cluster and the binaries move where the postgres user reaches them, and stay there', async () => {
    // What an older version left behind after failing here: a half-made, postgres-owned pg/.
    fs.mkdirSync(path.join(repo, '.lakets', 'pg'), { recursive: true });
    fs.chownSync(path.join(repo, '.lakets', 'pg'), postgresUid(), postgresUid());
    const pgPort = String(await freePort());
    const port = await freePort();
    const first = startCopy({ PORT: String(port), LAKETS_PG_PORT: pgPort, LAKETS_TICK_RATE: '50', LOG_LEVEL: 'warn' });
    await readyWithPrices(port, first);

    const dataDir = path.join(repo, '.lakets');
    const link = path.join(dataDir, 'pg');
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    const cluster = fs.realpathSync(link);
    const home = path.dirname(cluster);
    relocatedHomes.add(home);
    expect(path.dirname(home)).toBe(RELOCATION_BASE);
    const postmaster = postmasterOf(link);
    expect(postmaster.uid).toBe(postgresUid());
    expect(postmaster.exe.startsWith(path.join(home, 'pg-bin') + path.sep)).toBe(true);
    // credentials, log and lake stay in the data directory, private to root
    expect(fs.statSync(path.join(dataDir, 'credentials.json')).mode & 0o777).toBe(0o600);
    // The lake folder appears with the sync's first commit, a few seconds after the first ticks.
    await waitFor(() => fs.existsSync(path.join(dataDir, 'lake')), 60_000, 'the lake folder in the data directory');
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    // the next start finds the same cluster through the link
    const port2 = await freePort();
    const second = startCopy({ PORT: String(port2), LAKETS_PG_PORT: pgPort, LAKETS_TICK_RATE: '0', LOG_LEVEL: 'warn' });
    await readyWithPrices(port2, second);
    expect(fs.realpathSync(link)).toBe(cluster);
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(fs.readdirSync(RELOCATION_BASE).filter((d) => d.startsWith('repo-'))).toContain(path.basename(home));
  });

  it('with LAKETS_DATA_DIR outside the 0700 folder but the binaries inside it: the binaries are mirrored into LAKETS_DATA_DIR/pg-bin', async () => {
    const dataDir = path.join(publicDir, 'data');
    const port = await freePort();
    const proc = startCopy({ LAKETS_DATA_DIR: dataDir, PORT: String(port), LAKETS_PG_PORT: String(await freePort()), LAKETS_TICK_RATE: '50', LOG_LEVEL: 'warn' });
    await readyWithPrices(port, proc);
    expect(fs.lstatSync(path.join(dataDir, 'pg')).isDirectory()).toBe(true);
    expect(postmasterOf(path.join(dataDir, 'pg')).exe.startsWith(path.join(dataDir, 'pg-bin') + path.sep)).toBe(true);
    // the data directory lets the postgres group pass, and nobody else in
    const stat = fs.statSync(dataDir);
    expect(stat.mode & 0o777).toBe(0o710);
    expect(stat.gid).toBe(Number(execFileSync('id', ['-g', 'postgres']).toString().trim()));
    proc.child.kill('SIGTERM');
    expect(await proc.exited).toBe(0);
  });

  it('with an existing cluster behind a folder the postgres user cannot enter: one line naming the folder and the fix, nothing touched', async () => {
    const blocked = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-blocked-'));
    fs.chmodSync(blocked, 0o700);
    try {
      const dataDir = path.join(blocked, 'data');
      fs.mkdirSync(path.join(dataDir, 'pg'), { recursive: true });
      fs.writeFileSync(path.join(dataDir, 'pg', 'PG_VERSION'), '17\n');
      const proc = startCopy({ LAKETS_DATA_DIR: dataDir, PORT: String(await freePort()), LAKETS_PG_PORT: String(await freePort()) });
      expect(await proc.exited).toBe(1);
      expect(proc.output().trim().split('\n').at(-1)).toBe(
        `lakets: the postgres system user cannot reach the cluster in ${dataDir}/pg: ${blocked} (mode 0700) blocks it; ` +
          `make it traversable (chmod o+x ${blocked}) or set LAKETS_DATA_DIR to a folder outside it`,
      );
      expect(fs.readdirSync(dataDir)).toEqual(['pg']);
      expect(fs.readdirSync(path.join(dataDir, 'pg'))).toEqual(['PG_VERSION']);
    } finally {
      fs.rmSync(blocked, { recursive: true, force: true });
    }
  });
});
