// The pieces of the lake's lifecycle tests: ticks written at chosen times, the real jobs run once,
// the sync as its own process (with kill -9 crash injection), and the check that the lake's current
// state equals the source exactly with every change event once.

import pg from 'pg';
import { expect } from 'vitest';
import type { CdfCrashPoint, Config } from '../../src/config.ts';
import { parseLsn } from '../../src/lake/lsn.ts';
import type { LakeTable } from '../../src/lake/table.ts';
import { createLogger } from '../../src/logger.ts';
import { runJobOnce, type Job } from '../../src/scheduler/job.ts';
import { waitFor } from './context.ts';
import { lakeDuplicateEvents, lakeTicks, sourceTicks } from './lake.ts';
import { spawnEntry, type Spawned } from './processes.ts';

const logger = createLogger('silent');

/** `n` ticks of `symbol` from `at` on, a millisecond apart, with microseconds. */
export async function insertTicks(client: pg.ClientBase | pg.Pool, at: Date, n: number, symbol = 'AAPL'): Promise<void> {
  await client.query(
    `INSERT INTO stock_ticks (time, symbol, price, volume)
     SELECT $1::timestamptz + (g || ' ms')::interval + interval '0.000123 s', $3, 100 + g, g FROM generate_series(1, $2) g`,
    [at, n, symbol],
  );
}

/** Runs a job once; fails the test unless it succeeded. Returns its detail. */
export async function runJob(url: string, job: Job, config: Config): Promise<Record<string, unknown>> {
  const outcome = await runJobOnce(url, job, config, logger);
  if (outcome.status !== 'succeeded') throw new Error(`${job.name} ${outcome.status}: ${'error' in outcome ? outcome.error.message : ''}`);
  return (outcome.result.detail ?? {}) as Record<string, unknown>;
}

export interface CdfStateRow {
  state: string;
  committed_lsn: string | null;
  delta_version: string | null;
  detail: Record<string, unknown>;
}

export async function cdfState(client: pg.ClientBase | pg.Pool): Promise<CdfStateRow | undefined> {
  const { rows } = await client.query<CdfStateRow>(`SELECT state, committed_lsn::text, delta_version::text, detail FROM lakets.cdf_state WHERE table_name = 'stock_ticks'`);
  return rows[0];
}

export async function walInsertLsn(client: pg.ClientBase | pg.Pool): Promise<bigint> {
  const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  return parseLsn(rows[0]!.lsn);
}

/** The sync as its own process (jobs/cdf-sync-main.ts) on `url`, with the lake `env` names. */
export function startSyncProcess(url: string, env: Record<string, string | undefined>, crash?: { at: CdfCrashPoint; afterCommits: number }): Spawned {
  return spawnEntry('jobs/cdf-sync-main.ts', {
    DATABASE_URL: url,
    DATABASE_DIRECT_URL: undefined,
    LAKETS_CDF_BATCH_ROWS: '2000',
    LAKETS_CDF_BATCH_MS: '150',
    LAKETS_CDF_STATUS_MS: '200',
    LAKETS_CDF_CHECKPOINT_EVERY: '3',
    LAKETS_CDF_CRASH_AT: crash?.at,
    LAKETS_CDF_CRASH_AFTER_COMMITS: crash ? String(crash.afterCommits) : undefined,
    LOG_LEVEL: 'warn',
    ...env,
  });
}

/** Waits until the process killed itself at its crash point. */
export async function expectCrashed(child: Spawned, point: CdfCrashPoint): Promise<void> {
  await child.exited;
  expect(child.child.signalCode, child.output()).toBe('SIGKILL');
  expect(child.output()).toContain(`crash injected at ${point}`);
}

/** Waits until the sync streams and has committed everything written so far, and the shadow is purged. */
export async function waitForSyncedAll(client: pg.ClientBase | pg.Pool, child?: Spawned, timeoutMs = 60_000): Promise<void> {
  const target = await walInsertLsn(client);
  await waitFor(
    async () => {
      if (child && (child.child.exitCode !== null || child.child.signalCode !== null)) throw new Error(`the sync exited: ${child.output()}`);
      const s = await cdfState(client);
      return s?.state === 'STREAMING' && s.committed_lsn !== null && parseLsn(s.committed_lsn) >= target;
    },
    timeoutMs,
    'the sync to catch up',
    100,
  );
  await waitFor(async () => Number((await client.query(`SELECT count(*) AS n FROM lakets_cdf._shadow_stock_ticks`)).rows[0].n) === 0, 20_000, 'the shadow to be purged');
}

/** Stops a sync process cleanly (SIGTERM) and expects exit code 0. */
export async function stopSyncProcess(child: Spawned): Promise<void> {
  if (child.child.exitCode !== null || child.child.signalCode !== null) return;
  child.child.kill('SIGTERM');
  expect(await child.exited, child.output()).toBe(0);
}

/**
 * The lake's current state equals the source table exactly (`extraRows` for dropped chunks the
 * lake holds), with no event twice.
 */
export async function expectLakeHoldsSource(client: pg.ClientBase | pg.Pool, table: LakeTable | string, extraRows = 0): Promise<void> {
  const [source, lake] = await Promise.all([sourceTicks(client), lakeTicks(table)]);
  if (extraRows === 0) {
    if (lake.checksum !== source.checksum) {
      const lakeSet = new Set(lake.lines);
      const sourceSet = new Set(source.lines);
      expect({ missing: source.lines.filter((l) => !lakeSet.has(l)).slice(0, 5), extra: lake.lines.filter((l) => !sourceSet.has(l)).slice(0, 5) }).toEqual({ missing: [], extra: [] });
    }
    expect(lake.checksum).toBe(source.checksum);
  } else {
    const lakeSet = new Set(lake.lines);
    expect(source.lines.filter((l) => !lakeSet.has(l))).toEqual([]);
  }
  expect(lake.count).toBe(source.count + extraRows);
  expect(await lakeDuplicateEvents(table)).toBe(0);
}
