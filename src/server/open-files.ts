import fs from 'node:fs';

/**
 * File descriptors kept for everything but client sockets: the database pools and the LISTEN
 * connection, log files, the lake's files and DuckDB, child processes' pipes.
 */
export const DESCRIPTORS_RESERVED = 512;

/**
 * The process's soft limit on open files (`ulimit -n`), read from /proc/self/limits; undefined
 * where that file does not exist (not Linux) or says "unlimited". Node has no getrlimit.
 */
export function openFilesLimit(limitsFile = '/proc/self/limits'): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(limitsFile, 'utf8');
  } catch {
    return undefined;
  }
  const line = text.split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  return soft && /^\d+$/.test(soft) ? Number(soft) : undefined;
}

/**
 * The WebSocket connections the process can hold: the configured cap, lowered to what `ulimit -n`
 * leaves after the reserve (each socket is a descriptor). Past the descriptors, accepting fails
 * for every client and the process's own files and database connections fail with EMFILE, so the
 * cap is what refuses (503) instead. `lowered` says the limit, not the configuration, decided.
 */
export function webSocketCapacity(configured: number, limit: number | undefined): { cap: number; lowered: boolean; openFiles?: number } {
  if (limit === undefined) return { cap: configured, lowered: false };
  const fits = Math.max(16, limit - DESCRIPTORS_RESERVED);
  return fits < configured ? { cap: fits, lowered: true, openFiles: limit } : { cap: configured, lowered: false, openFiles: limit };
}
