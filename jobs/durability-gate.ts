import fs from 'node:fs';
import path from 'node:path';
import type pg from 'pg';
import { loadSnapshot } from '../src/lake/snapshot.ts';
import { rangeFingerprint } from '../src/lake/fingerprint.ts';
import type { Config } from '../src/server/config.ts';

/** Where the lake table of a ChronoTable lives (DESIGN §8: LAKETS_DATA_DIR/lake/<table>). */
export function lakeTableDir(config: Pick<Config, 'dataDir'>, table: string): string {
  return path.join(config.dataDir, 'lake', table);
}

export interface ChunkRow {
  id: string;
  table_name: string;
  chunk_name: string;
  range_start: Date;
  range_end: Date;
}

export type GateStep = 'tier' | 'drop';

export interface GateOutcome {
  chunk: string;
  result: string;
}

/** How long a gate waits for the sync to pass the WAL position read under the chunk lock. */
export const SYNC_WAIT_MS = 5_000;

/**
 * One chunk through the durability gate, in one transaction on `client` (DESIGN §4.4, §11.6):
 * lock the chunk (no writer in flight), read the WAL position under the lock, emit a fence so an
 * idle sync still moves past it, wait briefly for the sync to commit past it, fingerprint the
 * lake's current state for the chunk's range, and let SQL compare it with the chunk under the same
 * lock and tier or drop. Anything unproven defers; nothing here can drop an unproven chunk.
 */
export async function passChunkThroughGate(client: pg.ClientBase, config: Config, chunk: ChunkRow, step: GateStep): Promise<GateOutcome> {
  const lakeDir = lakeTableDir(config, chunk.table_name);
  await client.query('BEGIN');
  try {
    try {
      await client.query(`LOCK TABLE ${client.escapeIdentifier(chunk.chunk_name)} IN SHARE MODE NOWAIT`);
    } catch (err) {
      await client.query('ROLLBACK');
      const code = (err as { code?: string }).code;
      if (code === '55P03') return { chunk: chunk.chunk_name, result: 'deferred: chunk is being written' };
      if (code === '42P01') return { chunk: chunk.chunk_name, result: 'skipped: chunk table is gone' };
      throw err;
    }
    // No point waiting for a sync that is not streaming: defer at once, with its reason.
    const { rows: gate } = await client.query<{ ok: boolean; reason: string }>('SELECT ok, reason FROM lakets.sync_gate($1)', [chunk.table_name]);
    if (!gate[0]?.ok) {
      const { rows } = await client.query<{ result: string }>(`SELECT lakets._record_gate($1, $2) AS result`, [chunk.id, `deferred: ${gate[0]?.reason}`]);
      await client.query('COMMIT');
      return { chunk: chunk.chunk_name, result: rows[0]!.result };
    }
    const { rows: wal } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const required = wal[0]!.lsn;
    // A logical-decoding message after every write of the chunk: the sync sees it and advances
    // its committed position past it even when no tick arrives.
    // (Best effort: a role without the privilege just waits for the sync's own progress.)
    await client.query('SAVEPOINT fence');
    try {
      await client.query(`SELECT pg_logical_emit_message(false, 'lakets_fence', $1)`, [chunk.chunk_name]);
      await client.query('RELEASE SAVEPOINT fence');
    } catch {
      await client.query('ROLLBACK TO SAVEPOINT fence');
    }
    const caughtUp = await waitForSync(client, chunk.table_name, required, SYNC_WAIT_MS);
    if (!caughtUp) {
      const { rows } = await client.query<{ result: string }>(
        `SELECT lakets._record_gate($1, $2) AS result`,
        [chunk.id, `deferred: lake has not caught up with ${required} within ${SYNC_WAIT_MS} ms`],
      );
      await client.query('COMMIT');
      return { chunk: chunk.chunk_name, result: rows[0]!.result };
    }
    if (!fs.existsSync(path.join(lakeDir, '_delta_log'))) {
      await client.query('ROLLBACK');
      return { chunk: chunk.chunk_name, result: `deferred: no lake table at ${lakeDir}` };
    }
    const { rows: policy } = await client.query<{ id_column: string | null; time_column: string }>(
      `SELECT p.id_column, t.time_column FROM lakets.retention_policies p JOIN lakets.chronotables t USING (table_name)
        WHERE p.table_name = $1`,
      [chunk.table_name],
    );
    const snapshot = await loadSnapshot(lakeDir);
    const fp = await rangeFingerprint(snapshot, chunk.range_start, chunk.range_end, {
      timeColumn: policy[0]?.time_column ?? 'time',
      idColumn: policy[0]?.id_column ?? null,
      dayPartitionColumn: snapshot.metaData.partitionColumns.includes('date') ? 'date' : undefined,
    });
    const params = [chunk.id, required, fp.count.toString(), fp.sumId.toString(), fp.sumUs.toString()];
    const { rows } =
      step === 'tier'
        ? await client.query<{ result: string }>('SELECT lakets.tier_chunk($1, $2, $3, $4, $5, $6) AS result', [...params, snapshot.version])
        : await client.query<{ result: string }>('SELECT lakets.execute_retention($1, $2, $3, $4, $5) AS result', params);
    await client.query('COMMIT');
    return { chunk: chunk.chunk_name, result: rows[0]!.result };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function waitForSync(client: pg.ClientBase, table: string, required: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await client.query<{ ok: boolean }>(
      `SELECT coalesce(committed_lsn >= $2::pg_lsn, false) AS ok FROM lakets.cdf_state WHERE table_name = $1`,
      [table, required],
    );
    if (rows[0]?.ok) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs the gate over candidate chunks and sums up the outcomes for lakets.job_runs. */
export async function gateCandidates(client: pg.ClientBase, config: Config, step: GateStep, candidatesSql: string) {
  const { rows: candidates } = await client.query<ChunkRow>(candidatesSql);
  const outcomes: GateOutcome[] = [];
  for (const chunk of candidates) outcomes.push(await passChunkThroughGate(client, config, chunk, step));
  const done = outcomes.filter((o) => o.result === (step === 'tier' ? 'tiered' : 'dropped')).length;
  return {
    rowsAffected: done,
    detail: {
      candidates: candidates.length,
      [step === 'tier' ? 'tiered' : 'dropped']: done,
      deferred: outcomes.filter((o) => o.result.startsWith('deferred')).map((o) => `${o.chunk}: ${o.result}`),
    },
  };
}
