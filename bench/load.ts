// Shared pieces of the API benchmarks: servers in child processes (their CPU is their own), the
// CPU of the benchmark's Postgres, and one HTTP load run.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
// autocannon ships no types; its programmatic API is (options) => Promise<result>.
// @ts-expect-error untyped module
import autocannonUntyped from 'autocannon';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface ChildServer {
  port: number;
  /** CPU time this process has used so far, in microseconds (user + system). */
  cpuMicros(): Promise<number>;
  stop(): Promise<void>;
  child: ChildProcess;
}

/** Forks a TypeScript entry point of bench/ (through tsx) that sends { port } once it listens. */
export async function forkServer(entry: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildServer> {
  const child = fork(path.join(HERE, entry), args, {
    execArgv: ['--import', 'tsx'],
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`${entry} ${args[0] ?? ''} exited with ${code} before listening`));
    child.once('exit', onExit);
    child.on('message', function first(message: { port?: number }) {
      if (typeof message?.port !== 'number') return;
      child.off('message', first);
      child.off('exit', onExit);
      resolve(message.port);
    });
  });
  return {
    port,
    child,
    cpuMicros: () =>
      new Promise((resolve) => {
        child.on('message', function reply(message: { cpu?: { user: number; system: number } }) {
          if (!message?.cpu) return;
          child.off('message', reply);
          resolve(message.cpu.user + message.cpu.system);
        });
        child.send('cpu');
      }),
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.send('stop');
        setTimeout(() => child.kill('SIGKILL'), 5_000).unref();
      }),
  };
}

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux

/**
 * CPU time (µs) so far of a postmaster and its children — every backend, walsender and auxiliary
 * process of the benchmark's own Postgres (other servers on the machine are not counted) — by
 * process id. Linux /proc only; null elsewhere or when the server is not ours (DATABASE_URL).
 */
export function postgresCpu(postmasterPid: number | undefined): Map<number, number> | null {
  if (postmasterPid === undefined || !fs.existsSync('/proc/self/stat')) return null;
  const cpu = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid … utime(14) stime(15): comm may hold spaces, so split after its ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    if (Number(entry) !== postmasterPid && ppid !== postmasterPid) continue;
    cpu.set(Number(entry), ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND) * 1e6);
  }
  return cpu;
}

/** CPU used between two postgresCpu() readings (a process that exited meanwhile is lost: a lower bound). */
export function postgresCpuBetween(before: Map<number, number> | null, after: Map<number, number> | null): number | null {
  if (!before || !after) return null;
  let micros = 0;
  for (const [pid, cpu] of after) micros += cpu - (before.get(pid) ?? 0);
  return micros;
}

export interface LoadResult {
  requestsPerSecond: number;
  requests: number;
  p50Ms: number;
  p99Ms: number;
  /** Responses that were not 2xx, plus socket errors and timeouts. */
  failures: number;
}

/** One closed-loop HTTP load: `connections` keep-alive connections POSTing `body` for `seconds`. */
export async function httpLoad(url: string, body: string, connections: number, seconds: number): Promise<LoadResult> {
  const autocannon = autocannonUntyped as (options: Record<string, unknown>) => Promise<{
    requests: { average: number; total: number };
    latency: { p50: number; p99: number };
    non2xx: number;
    errors: number;
    timeouts: number;
  }>;
  const result = await autocannon({
    url,
    method: 'POST',
    connections,
    pipelining: 1,
    duration: seconds,
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
    body,
  });
  return {
    requestsPerSecond: Math.round(result.requests.total / seconds),
    requests: result.requests.total,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    failures: result.non2xx + result.errors + result.timeouts,
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
