import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import path from 'node:path';

/**
 * What the embedded Postgres' supervision needs to know about processes: whether a postmaster left
 * on our data directory is still running and who its parent is, the backends a killed postmaster
 * left behind, and a watchdog that stops Postgres when the Node process dies without stopping it.
 * Linux reads /proc; elsewhere `ps` answers what it can and orphaned backends are left to exit
 * by themselves (they do once they notice their postmaster is gone).
 */

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to another user (a root-run server's postgres processes do not).
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function parentPid(pid: number): number | undefined {
  try {
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    try {
      const ppid = Number(execFileSync('ps', ['-o', 'ppid=', '-p', String(pid)], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
      return Number.isInteger(ppid) && ppid > 0 ? ppid : undefined;
    } catch {
      return undefined;
    }
  }
}

/** The fields of postmaster.pid that matter here (its layout is fixed by Postgres). */
export interface PostmasterPidFile {
  pid: number;
  dataDir: string;
  port: number;
}

export function readPostmasterPid(pgData: string): PostmasterPidFile | undefined {
  let lines: string[];
  try {
    lines = fs.readFileSync(path.join(pgData, 'postmaster.pid'), 'utf8').split('\n');
  } catch {
    return undefined;
  }
  const pid = Number(lines[0]);
  const port = Number(lines[3]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  return { pid, dataDir: lines[1] ?? '', port: Number.isInteger(port) ? port : 0 };
}

function sameDirectory(a: string, b: string): boolean {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return false;
  }
}

function isPostgresBinary(exe: string): boolean {
  // (a binary replaced by a reinstall reads "postgres (deleted)")
  return path.basename(exe).replace(/ \(deleted\)$/, '') === 'postgres';
}

/**
 * Whether `pid` is a Postgres process working in `pgData`: a postmaster.pid left by a crash may name
 * a pid the system has since given to an unrelated process, which must never be signalled.
 */
function isPostgresIn(pid: number, pgData: string): boolean {
  if (fs.existsSync('/proc/self')) {
    try {
      return isPostgresBinary(fs.readlinkSync(`/proc/${pid}/exe`)) && sameDirectory(fs.readlinkSync(`/proc/${pid}/cwd`), pgData);
    } catch {
      return false; // gone, or another user's process: ours runs as us (or as postgres, which root may inspect)
    }
  }
  try {
    const comm = execFileSync('ps', ['-o', 'comm=', '-p', String(pid)], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return isPostgresBinary(comm);
  } catch {
    return false;
  }
}

/** The postmaster running on this data directory (its postmaster.pid names it and it is alive), if any. */
export function runningPostmaster(pgData: string): PostmasterPidFile | undefined {
  const info = readPostmasterPid(pgData);
  if (!info || !isAlive(info.pid)) return undefined; // a stale lock file from a crash: Postgres replaces it
  if (!sameDirectory(info.dataDir, pgData) || !isPostgresIn(info.pid, pgData)) return undefined;
  return info;
}

/** Processes of our postgres binary whose working directory is this data directory (Linux only). */
function postgresProcessesIn(pgData: string): number[] {
  let real: string;
  let entries: string[];
  try {
    real = fs.realpathSync(pgData);
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  const pids: number[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      // Every Postgres process runs with the data directory as its working directory; checking the
      // executable too spares, say, a shell someone left in that folder.
      if (fs.readlinkSync(`/proc/${pid}/cwd`) !== real) continue;
      if (!isPostgresBinary(fs.readlinkSync(`/proc/${pid}/exe`))) continue;
      pids.push(pid);
    } catch {
      // gone meanwhile, or not ours to inspect
    }
  }
  return pids;
}

async function waitGone(pids: number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (pids.some(isAlive)) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return true;
}

/**
 * Backends of a postmaster that was killed keep its shared memory attached, and a new postmaster
 * refuses to start until they are gone. They are orphans doomed anyway: end them now.
 */
export async function killOrphanedBackends(pgData: string): Promise<number> {
  const pids = postgresProcessesIn(pgData);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await waitGone(pids, 5_000);
  return pids.length;
}

/**
 * Stops a postmaster we do not supervise (left running by a killed `npm start`): a fast shutdown
 * first (clean, no recovery needed), then an immediate one, then SIGKILL and its backends.
 */
export async function stopPostmaster(pid: number, pgData: string): Promise<void> {
  const steps: Array<[NodeJS.Signals, number]> = [
    ['SIGINT', 30_000],
    ['SIGQUIT', 10_000],
    ['SIGKILL', 5_000],
  ];
  for (const [signal, timeoutMs] of steps) {
    try {
      process.kill(pid, signal);
    } catch {
      break; // gone
    }
    if (await waitGone([pid], timeoutMs)) break;
  }
  await killOrphanedBackends(pgData);
}

/**
 * A tiny shell process that holds the read end of a pipe from Node: when Node dies for any reason,
 * even SIGKILL, the kernel closes the pipe, `read` returns and the watchdog asks the postmaster for
 * a fast shutdown. Postgres itself does not notice its parent's death. On a normal stop Node kills
 * the watchdog first.
 */
export interface Watchdog {
  pid: number;
  disarm(): void;
}

const WATCHDOG_SCRIPT = 'read -r _ ; kill -INT "$1" 2>/dev/null ; exit 0';

export function startWatchdog(postmasterPid: number): Watchdog | undefined {
  let child: ChildProcess;
  try {
    child = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT, 'lakets-pg-watchdog', String(postmasterPid)], {
      detached: true, // its own process group: Ctrl-C in the terminal reaches only Node
      stdio: ['pipe', 'ignore', 'ignore'],
    });
  } catch {
    return undefined;
  }
  child.on('error', () => undefined); // no /bin/sh: the next start's takeover is the guarantee
  child.unref();
  (child.stdin as net.Socket | null)?.unref();
  child.stdin?.on('error', () => undefined);
  return {
    pid: child.pid ?? -1,
    disarm() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      child.stdin?.destroy();
    },
  };
}
