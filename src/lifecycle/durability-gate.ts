import type pg from 'pg';
import { loadSnapshot } from '../lake/snapshot.ts';
import { rangeFingerprint, type RangeFingerprint } from '../lake/fingerprint.ts';
import { lakeTableExists } from '../lake/log-listing.ts';
import { sharedLakeTable } from '../lake/shared-tables.ts';
import type { Config } from '../config.ts';

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

/** Most chunks one gate transaction takes: bounds the locks it holds and, for drops, how long the parent stays locked. */
export const GATE_BATCH = 50;

/**
 * Chunks of one table through the durability gate together, in one transaction on `client`
 * (docs/ARCHITECTURE.md §7, H6): lock each chunk (no writer in flight), read the WAL position under
 * those locks, emit a fence so an idle sync still moves past it, wait briefly for the sync to commit
 * past it, fingerprint the lake's current state for each chunk's range, and let SQL compare each with
 * its chunk under the same lock and tier or drop it. Anything unproven defers; nothing here can drop
 * an unproven chunk.
 *
 * One fence and one wait serve the whole batch: the wait for the sync's next commit (up to its batch
 * interval, seconds) is what a chunk costs, so a backlog of chunks (a backfilled history, or the
 * chunks that aged while the sync was down) passes in one wait instead of one wait each.
 */
export async function passChunksThroughGate(client: pg.ClientBase, config: Config, chunks: readonly ChunkRow[], step: GateStep): Promise<GateOutcome[]> {
  const table = chunks[0]?.table_name;
  if (table === undefined) return [];
  if (chunks.some((chunk) => chunk.table_name !== table)) throw new Error('passChunksThroughGate: one table per batch');
  // The table on the lake's store (local folder or object store); its files are read in place or
  // fetched into the process's bounded cache, only those of the chunks' days.
  const lake = sharedLakeTable(config.lake.store, table);
  const outcomes = new Map<ChunkRow, string>();
  const locked: ChunkRow[] = [];
  await client.query('BEGIN');
  try {
    for (const chunk of chunks) {
      await client.query('SAVEPOINT chunk_lock');
      try {
        await client.query(`LOCK TABLE ${client.escapeIdentifier(chunk.chunk_name)} IN SHARE MODE NOWAIT`);
        await client.query('RELEASE SAVEPOINT chunk_lock');
        locked.push(chunk);
      } catch (err) {
        await client.query('ROLLBACK TO SAVEPOINT chunk_lock');
        const code = (err as { code?: string }).code;
        if (code === '55P03') outcomes.set(chunk, 'deferred: chunk is being written');
        else if (code === '42P01') outcomes.set(chunk, 'skipped: chunk table is gone');
        else throw err;
      }
    }
    const record = async (result: string): Promise<void> => {
      for (const chunk of locked) {
        const { rows } = await client.query<{ result: string }>(`SELECT lakets._record_gate($1, $2) AS result`, [chunk.id, result]);
        outcomes.set(chunk, rows[0]!.result);
      }
    };
    const finish = (): GateOutcome[] => chunks.map((chunk) => ({ chunk: chunk.chunk_name, result: outcomes.get(chunk) ?? 'deferred: not examined' }));
    if (locked.length === 0) {
      await client.query('ROLLBACK');
      return finish();
    }
    // No point waiting for a sync that is not streaming: defer at once, with its reason.
    const { rows: gate } = await client.query<{ ok: boolean; reason: string }>('SELECT ok, reason FROM lakets.sync_gate($1)', [table]);
    if (!gate[0]?.ok) {
      await record(`deferred: ${gate[0]?.reason}`);
      await client.query('COMMIT');
      return finish();
    }
    const { rows: wal } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const required = wal[0]!.lsn;
    // A logical-decoding message after every write of the chunks: the sync sees it and advances
    // its committed position past it even when no tick arrives.
    // (Best effort: a role without the privilege just waits for the sync's own progress.)
    await client.query('SAVEPOINT fence');
    try {
      await client.query(`SELECT pg_logical_emit_message(false, 'lakets_fence', $1)`, [locked.map((chunk) => chunk.chunk_name).join(',')]);
      await client.query('RELEASE SAVEPOINT fence');
    } catch {
      await client.query('ROLLBACK TO SAVEPOINT fence');
    }
    const caughtUp = await waitForSync(client, table, required, SYNC_WAIT_MS);
    if (!caughtUp) {
      await record(`deferred: lake has not caught up with ${required} within ${SYNC_WAIT_MS} ms`);
      await client.query('COMMIT');
      return finish();
    }
    if (!(await lakeTableExists(lake))) {
      await client.query('ROLLBACK');
      for (const chunk of locked) outcomes.set(chunk, `deferred: no lake table at ${lake.location}`);
      return finish();
    }
    const { rows: policy } = await client.query<{ id_column: string | null; time_column: string }>(
      `SELECT p.id_column, t.time_column FROM lakets.retention_policies p JOIN lakets.chronotables t USING (table_name)
        WHERE p.table_name = $1`,
      [table],
    );
    const snapshot = await loadSnapshot(lake);
    // Every lake fingerprint first: a drop locks the parent table until this transaction ends, so the
    // drops come last and back to back.
    const fingerprints: RangeFingerprint[] = [];
    for (const chunk of locked) {
      fingerprints.push(
        await rangeFingerprint(snapshot, chunk.range_start, chunk.range_end, {
          timeColumn: policy[0]?.time_column ?? 'time',
          idColumn: policy[0]?.id_column ?? null,
          dayPartitionColumn: snapshot.metaData.partitionColumns.includes('date') ? 'date' : undefined,
        }),
      );
    }
    for (const [i, chunk] of locked.entries()) {
      const fp = fingerprints[i]!;
      const params = [chunk.id, required, fp.count.toString(), fp.sumId.toString(), fp.sumUs.toString()];
      const { rows } =
        step === 'tier'
          ? await client.query<{ result: string }>('SELECT lakets.tier_chunk($1, $2, $3, $4, $5, $6) AS result', [...params, snapshot.version])
          : await client.query<{ result: string }>('SELECT lakets.execute_retention($1, $2, $3, $4, $5) AS result', params);
      outcomes.set(chunk, rows[0]!.result);
    }
    await client.query('COMMIT');
    return finish();
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** One chunk through the durability gate: a batch of one. */
export async function passChunkThroughGate(client: pg.ClientBase, config: Config, chunk: ChunkRow, step: GateStep): Promise<GateOutcome> {
  const [outcome] = await passChunksThroughGate(client, config, [chunk], step);
  return outcome!;
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
  // Batches of one table each, in the candidates' order (oldest first).
  let batch: ChunkRow[] = [];
  for (const chunk of candidates) {
    if (batch.length === GATE_BATCH || (batch.length > 0 && batch[0]!.table_name !== chunk.table_name)) {
      outcomes.push(...(await passChunksThroughGate(client, config, batch, step)));
      batch = [];
    }
    batch.push(chunk);
  }
  outcomes.push(...(await passChunksThroughGate(client, config, batch, step)));
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
