// The change feed into Delta Lake (docs/ARCHITECTURE.md §6, H1, H7, H8): the shadow mirror and its
// publication, the sync end to end (inserts, corrections, deletes -> the lake's current state equals
// the source exactly), kill -9 of the sync at each crash point and restart (every change event in the
// lake exactly once), a Postgres restart during the sync, and the wal_level check. Real Postgres
// servers and real processes; crash and restart tests run their own embedded Postgres.

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CdfSync, runCdfSyncOnce } from '../../src/cdf/cdf-sync.ts';
import { seqRanges } from '../../src/cdf/shadow-purge.ts';
import { CDF_CRASH_POINTS, lakeTableDir, type CdfCrashPoint } from '../../src/config.ts';
import { copyTicks } from '../../src/ticks/tick-table.ts';
import { TickGenerator, type Tick } from '../../src/ticks/generator.ts';
import { loadSnapshot } from '../../src/lake/snapshot.ts';
import { parseLsn } from '../../src/lake/lsn.ts';
import { ensureDatabase, startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded/postgres.ts';
import { migrate } from '../../src/db/migrate.ts';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { fileLake, lakeDuplicateEvents, lakeEventCounts, lakeTicks, sourceTicks } from '../helpers/lake.ts';
import { freePort } from '../helpers/ports.ts';
import { spawnEntry, type Spawned } from '../helpers/processes.ts';

const SYMBOLS = [
  { symbol: 'AAPL', basePrice: 228.5, volatility: 0.25 },
  { symbol: 'MSFT', basePrice: 415.2, volatility: 0.22 },
  { symbol: 'BTC-USD', basePrice: 67250, volatility: 0.65 },
];

function tempDir(label: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `lakets-${label}-`));
  chmodSync(dir, 0o755); // the embedded Postgres runs as the postgres user
  return dir;
}

/** Ticks of the last minutes with microsecond timestamps (the generator keeps them). */
function makeTicks(generator: TickGenerator, count: number): Tick[] {
  const now = BigInt(Date.now()) * 1000n;
  return generator.batch(count, now - 90_000_000n, 60_000_000n);
}

/** What the test wrote, to check the lake's event counts exactly. */
class Expected {
  insert = 0;
  update = 0;
  delete = 0;
  add(kind: 'insert' | 'update' | 'delete', n: number | null): void {
    this[kind] += n ?? 0;
  }
  get counts(): Record<string, number> {
    const out: Record<string, number> = { total: this.insert + 2 * this.update + this.delete };
    if (this.insert) out['insert'] = this.insert;
    if (this.update) {
      out['update_preimage'] = this.update;
      out['update_postimage'] = this.update;
    }
    if (this.delete) out['delete'] = this.delete;
    return out;
  }
}

/** A round of writes: COPY batches, a correction, a delete, and one transaction mixing all three. */
async function writeRound(client: pg.Client, generator: TickGenerator, expected: Expected, size: number, round: number): Promise<void> {
  for (let i = 0; i < 3; i++) {
    const ticks = makeTicks(generator, size);
    await copyTicks(client, ticks);
    expected.add('insert', ticks.length);
  }
  const upd = await client.query(`UPDATE stock_ticks SET price = price * 1.01, volume = volume + 1 WHERE tick_id % 7 = $1`, [round % 7]);
  expected.add('update', upd.rowCount);
  const del = await client.query(`DELETE FROM stock_ticks WHERE tick_id % 11 = $1`, [round % 11]);
  expected.add('delete', del.rowCount);
  await client.query('BEGIN');
  const ticks = makeTicks(generator, 50);
  await copyTicks(client, ticks);
  expected.add('insert', ticks.length);
  const u2 = await client.query(`UPDATE stock_ticks SET price = price + 0.5 WHERE tick_id IN (SELECT max(tick_id) FROM stock_ticks)`);
  expected.add('update', u2.rowCount);
  const d2 = await client.query(`DELETE FROM stock_ticks WHERE tick_id IN (SELECT min(tick_id) FROM stock_ticks)`);
  expected.add('delete', d2.rowCount);
  await client.query('COMMIT');
}

/** Parquet data files on disk (live or not), checkpoints excluded. */
async function countParquetFiles(tableDir: string): Promise<number> {
  const entries = await readdir(tableDir, { recursive: true });
  return entries.filter((n) => n.endsWith('.parquet') && !n.startsWith('_delta_log')).length;
}

async function currentLsn(client: pg.ClientBase | pg.Pool): Promise<bigint> {
  const { rows } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
  return parseLsn(rows[0]?.lsn as string);
}

interface StateRow {
  state: string;
  committed_lsn: string | null;
  delta_version: string | null;
  rows_synced: string;
  updated_at: Date;
  detail: Record<string, unknown>;
}

async function cdfState(client: pg.ClientBase | pg.Pool): Promise<StateRow | undefined> {
  const { rows } = await client.query<StateRow>(`SELECT * FROM lakets.cdf_state WHERE table_name = 'stock_ticks'`);
  return rows[0];
}

/** Asserts the lake equals the source exactly: current state (count + checksum), events, no duplicates. */
async function expectLakeEqualsSource(client: pg.ClientBase, tableDir: string, expected: Expected): Promise<void> {
  const source = await sourceTicks(client);
  const lake = await lakeTicks(tableDir);
  expect(lake.count).toBe(source.count);
  if (lake.checksum !== source.checksum) {
    const lakeSet = new Set(lake.lines);
    const sourceSet = new Set(source.lines);
    expect({ missing: source.lines.filter((l) => !lakeSet.has(l)).slice(0, 5), extra: lake.lines.filter((l) => !sourceSet.has(l)).slice(0, 5) }).toEqual({ missing: [], extra: [] });
  }
  expect(lake.checksum).toBe(source.checksum);
  expect(await lakeEventCounts(tableDir)).toEqual(expected.counts);
  expect(await lakeDuplicateEvents(tableDir)).toBe(0);
}

describe('shadow mirror and publication', () => {
  const ctx = useTestContext('cdf_shadow');

  it('enable_sync made the shadow, an inserts-only publication named after the database, and is idempotent', async () => {
    const { rows: tables } = await ctx.db.query(`SELECT * FROM lakets.cdf_tables`);
    expect(tables).toHaveLength(1);
    expect(tables[0]).toMatchObject({ table_name: 'stock_ticks', shadow_table: '_shadow_stock_ticks', database_name: ctx.db.name });
    expect(tables[0]!.publication_name).toContain(ctx.db.name);
    expect(tables[0]!.slot_name).toContain(ctx.db.name);
    const { rows: pubs } = await ctx.db.query(
      `SELECT pubinsert, pubupdate, pubdelete, pubtruncate,
              (SELECT array_agg(schemaname || '.' || tablename) FROM pg_publication_tables pt WHERE pt.pubname = p.pubname) AS tables
         FROM pg_publication p WHERE pubname = $1`,
      [tables[0]!.publication_name],
    );
    expect(pubs[0]).toEqual({ pubinsert: true, pubupdate: false, pubdelete: false, pubtruncate: false, tables: ['lakets_cdf._shadow_stock_ticks'] });
    const again = await ctx.db.query(`SELECT lakets.enable_sync('stock_ticks') AS shadow`); // again: no error, nothing doubled
    expect(again.rows[0]!.shadow).toBe('lakets_cdf._shadow_stock_ticks');
    // Purges go by an index on _seq (021): their cost follows the batch, not the backlog.
    const { rows: indexes } = await ctx.db.query(`SELECT indexdef FROM pg_indexes WHERE schemaname = 'lakets_cdf' AND tablename = '_shadow_stock_ticks'`);
    expect(indexes.map((r) => r.indexdef)).toEqual([expect.stringMatching(/btree \(_seq\)$/)]);
    const { rows: triggers } = await ctx.db.query(
      `SELECT tgname FROM pg_trigger WHERE tgrelid = 'stock_ticks'::regclass AND tgname LIKE 'lakets_cdf%' ORDER BY 1`,
    );
    expect(triggers.map((r) => r.tgname)).toEqual(['lakets_cdf_del', 'lakets_cdf_ins', 'lakets_cdf_upd']);
    const { rows: state } = await ctx.db.query(`SELECT state, slot_name FROM lakets.cdf_state`);
    expect(state).toEqual([{ state: 'STOPPED', slot_name: tables[0]!.slot_name }]);
  });

  it('mirrors inserts, updates (pre and post images) and deletes per statement; partition moves are not changes', async () => {
    await ctx.db.query(`SELECT lakets.run_partition_manager()`);
    await ctx.db.query(
      `INSERT INTO stock_ticks (time, symbol, price, volume) VALUES
         (now() - interval '10 seconds', 'AAPL', 100, 1), (now() - interval '9 seconds', 'AAPL', 101, 2),
         (now() - interval '3 hours' + interval '0.000001 second', 'MSFT', 50, 3)`,
    );
    await ctx.db.query(`UPDATE stock_ticks SET price = 102.5 WHERE price = 101`);
    await ctx.db.query(`DELETE FROM stock_ticks WHERE price = 100`);
    const events = async () =>
      (await ctx.db.query(`SELECT _change_type, price, to_char(time AT TIME ZONE 'UTC', 'US') AS us, _seq FROM lakets_cdf._shadow_stock_ticks ORDER BY _seq, _change_type`)).rows;
    const before = await events();
    expect(before.map((r) => `${r._change_type}:${r.price}`)).toEqual([
      'insert:100', 'insert:101', 'insert:50', 'update_preimage:101', 'update_postimage:102.5', 'delete:100',
    ]);
    // The 3-hour-old tick waits in the default partition; the manager moves it into a new chunk
    // by writing the partitions directly: no change events for that.
    const { rows: moved } = await ctx.db.query(`SELECT rows_moved FROM lakets.run_partition_manager()`);
    // (At least the old tick; a fresh tick lands there too when the minute just turned.)
    expect(Number(moved[0]!.rows_moved)).toBeGreaterThanOrEqual(1);
    expect(await events()).toEqual(before);
    // Purge removes exactly the ranges given, nothing else.
    const seqs = before.map((r) => BigInt(r._seq));
    const purged = await ctx.db.query(`SELECT lakets.purge_synced_shadow('stock_ticks', $1::bigint[], $2::bigint[]) AS n`, [
      [seqs[0]!.toString(), seqs[3]!.toString()],
      [seqs[1]!.toString(), seqs[3]!.toString()],
    ]);
    expect(Number(purged.rows[0]!.n)).toBe(3);
    expect((await events()).map((r) => `${r._change_type}:${r.price}`)).toEqual(['insert:50', 'update_postimage:102.5', 'delete:100']);
  });

  it('merges sequence values into ranges', () => {
    expect(seqRanges([5n, 1n, 2n, 3n, 9n, 8n, 3n])).toEqual([[1n, 3n], [5n, 5n], [8n, 9n]]);
  });
});

describe('cdf_sync end to end', () => {
  const ctx = useTestContext('cdf_e2e');
  let dataDir: string;
  let client: pg.Client;
  beforeAll(async () => {
    dataDir = tempDir('cdf-e2e');
    client = new pg.Client({ connectionString: ctx.db.url });
    await client.connect();
    await client.query(`SELECT lakets.run_partition_manager()`);
  });
  afterAll(async () => {
    await client?.end();
    await ctx.db.query(`SELECT lakets.disable_sync('stock_ticks')`).catch(() => undefined);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('streams inserts, corrections and deletes: the lake equals the source exactly, the shadow is purged', async () => {
    const generator = new TickGenerator(SYMBOLS, { seed: 11 });
    const expected = new Expected();
    // Changes made before the slot exists reach the lake through the slot's exported snapshot.
    await writeRound(client, generator, expected, 400, 0);
    const tableDir = lakeTableDir(dataDir);
    const sync = new CdfSync({ url: ctx.db.url, lake: fileLake(dataDir), batchMaxRows: 1_000, batchMaxMs: 150, statusIntervalMs: 200, checkpointInterval: 4 });
    await sync.start();
    try {
      expect((await cdfState(client))?.state).toBe('STREAMING');
      const started = Date.now();
      let rows = 0;
      for (let round = 1; round <= 4; round++) {
        await writeRound(client, generator, expected, 2_000, round);
        rows += 6_050;
      }
      const target = await currentLsn(client);
      await sync.waitForCommittedLsn(target, 60_000);
      const ms = Date.now() - started;
      console.log(`cdf_sync e2e: ${expected.counts['total']} change events in the lake, ${rows} rows written in 4 rounds, caught up ${ms} ms after the first write (${Math.round((expected.counts['total']! * 1000) / ms)} events/s incl. ingest)`);
      await expectLakeEqualsSource(client, tableDir, expected);

      const snapshot = await loadSnapshot(tableDir);
      // A checkpoint every 4 commits (how many commits there were depends on timing).
      expect(snapshot.checkpointVersion).toBe(snapshot.version >= 4 ? snapshot.version - (snapshot.version % 4) : null);
      expect(snapshot.metaData.configuration['lakets.source.database']).toBe(ctx.db.name);
      const state = await cdfState(client);
      expect(state).toMatchObject({ state: 'STREAMING', delta_version: String(snapshot.version), rows_synced: String(expected.counts['total']) });
      expect(parseLsn(state!.committed_lsn!)).toBeGreaterThanOrEqual(target);
      expect(snapshot.txns.get('lakets-cdf:public.stock_ticks')).toBeLessThanOrEqual(parseLsn(state!.committed_lsn!));
      await waitFor(async () => Number((await client.query(`SELECT count(*) AS n FROM lakets_cdf._shadow_stock_ticks`)).rows[0].n) === 0, 10_000, 'the shadow to be purged');

      // Idle: WAL that is not ours (another table) moves the WAL end; keepalives advance committed_lsn.
      await client.query(`CREATE TABLE unrelated AS SELECT generate_series(1, 1000) AS x`);
      const later = await currentLsn(client);
      await waitFor(async () => parseLsn((await cdfState(client))!.committed_lsn!) >= later, 10_000, 'committed_lsn to follow the WAL on idle keepalives');
      const fresh = await cdfState(client);
      expect(Date.now() - fresh!.updated_at.getTime()).toBeLessThan(5_000);
      const slot = await client.query(`SELECT active, confirmed_flush_lsn::text AS f FROM pg_replication_slots WHERE slot_name = $1`, [`lakets_cdf_${ctx.db.name}_stock_ticks`]);
      expect(slot.rows[0].active).toBe(true);
      // The slot never confirms more than the lake holds (the sync's own durable position, read after
      // the slot; cdf_state's copy of it is refreshed on a period and may trail the slot briefly).
      expect(parseLsn(slot.rows[0].f)).toBeLessThanOrEqual(sync.status.committedLsn);
    } finally {
      await sync.stop();
    }
    expect((await cdfState(client))?.state).toBe('STOPPED');

    // A restart with nothing new writes nothing twice; new changes after it arrive once.
    const again = await runCdfSyncOnce({ url: ctx.db.url, lake: fileLake(dataDir), batchMaxMs: 100, statusIntervalMs: 100 });
    expect(again.commits).toBe(0);
    await writeRound(client, generator, expected, 100, 5);
    await runCdfSyncOnce({ url: ctx.db.url, lake: fileLake(dataDir), batchMaxMs: 100, statusIntervalMs: 100 });
    await expectLakeEqualsSource(client, tableDir, expected);
  });
});

describe('crash safety and restarts (own embedded Postgres)', () => {
  let server: EmbeddedPostgres;
  let pgDir: string;
  let port: number;
  beforeAll(async () => {
    pgDir = tempDir('cdf-crash-pg');
    port = await freePort();
    server = await startEmbeddedPostgres({ dataDir: pgDir, port, fast: true });
  });
  afterAll(async () => {
    await server?.stop();
    if (pgDir) rmSync(pgDir, { recursive: true, force: true });
  });

  async function freshDatabase(name: string): Promise<{ url: string; client: pg.Client }> {
    const url = await ensureDatabase(server.adminUrl, name);
    await migrate(url);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`SELECT lakets.run_partition_manager()`);
    return { url, client };
  }

  function startSyncProcess(url: string, dataDir: string, crashAt?: CdfCrashPoint): Spawned {
    return spawnEntry('jobs/cdf-sync-main.ts', {
      DATABASE_URL: url,
      DATABASE_DIRECT_URL: undefined,
      LAKETS_DATA_DIR: dataDir,
      LAKETS_CDF_BATCH_ROWS: '2000',
      LAKETS_CDF_BATCH_MS: '150',
      LAKETS_CDF_STATUS_MS: '200',
      LAKETS_CDF_CHECKPOINT_EVERY: '3',
      LAKETS_CDF_CRASH_AT: crashAt,
      LAKETS_CDF_CRASH_AFTER_COMMITS: crashAt ? '2' : undefined,
      LOG_LEVEL: 'warn',
    });
  }

  // The last case loses the slot as well (dropped, or invalidated by max_slot_wal_keep_size) while
  // the crashed commit's shadow rows are not purged: the new slot's snapshot must not write them again.
  const cases: Array<[CdfCrashPoint, boolean]> = [...CDF_CRASH_POINTS.map((p): [CdfCrashPoint, boolean] => [p, false]), ['commit-visible-before-ack', true]];
  for (const [point, loseSlot] of cases) {
    it(`kill -9 at ${point}${loseSlot ? ' and the slot lost' : ''}, restart: every change event is in the lake exactly once`, async () => {
      const dbName = `crash_${point.replaceAll('-', '_')}${loseSlot ? '_slot' : ''}`;
      const { url, client } = await freshDatabase(dbName);
      const dataDir = tempDir(`cdf-${point}`);
      const tableDir = lakeTableDir(dataDir);
      const generator = new TickGenerator(SYMBOLS, { seed: point.length });
      const expected = new Expected();
      let child: Spawned | undefined;
      try {
        await writeRound(client, generator, expected, 300, 0);
        child = startSyncProcess(url, dataDir, point);
        await waitFor(async () => (await cdfState(client))?.state === 'STREAMING' || child!.child.exitCode !== null || child!.child.signalCode !== null, 30_000, 'the sync to stream');
        // Commit 0 is the snapshot; the crash comes at commit 2, so commit 1 is in the lake before it.
        let round = 1;
        while (child.child.signalCode === null && child.child.exitCode === null && round < 40) {
          await writeRound(client, generator, expected, 400, round++);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        await child.exited;
        expect(child.child.signalCode, child.output()).toBe('SIGKILL');
        expect(child.output()).toContain(`crash injected at ${point}`);
        const crashedAt = await loadSnapshot(tableDir);
        expect(crashedAt.version).toBeGreaterThanOrEqual(point === 'parquet-written' || point === 'commit-temp-written' ? 1 : 2);
        const logNames = await readdir(path.join(tableDir, '_delta_log'));
        const dataFiles = await countParquetFiles(tableDir);
        if (point === 'parquet-written' || point === 'commit-temp-written') {
          // The dead commit's Parquet files are on disk but no commit names them.
          expect(dataFiles).toBeGreaterThan(crashedAt.files.length);
        }
        if (point === 'commit-temp-written') {
          expect(logNames.filter((n) => n.endsWith('.tmp'))).toHaveLength(1);
        }

        if (loseSlot) {
          const dropped = await client.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1`, [dbName]);
          expect(dropped.rowCount).toBe(1);
        }
        // Changes while the sync is down, then a restart without the crash.
        await writeRound(client, generator, expected, 300, round++);
        const target = await currentLsn(client);
        child = startSyncProcess(url, dataDir);
        await waitFor(async () => {
          const s = await cdfState(client);
          return s?.state === 'STREAMING' && s.committed_lsn !== null && parseLsn(s.committed_lsn) >= target;
        }, 60_000, 'the restarted sync to catch up');
        await waitFor(async () => Number((await client.query(`SELECT count(*) AS n FROM lakets_cdf._shadow_stock_ticks`)).rows[0].n) === 0, 10_000, 'the shadow to be purged');
        const state = await cdfState(client);
        child.child.kill('SIGTERM');
        expect(await child.exited).toBe(0);
        child = undefined;

        await expectLakeEqualsSource(client, tableDir, expected);
        const after = await loadSnapshot(tableDir);
        expect(after.version).toBeGreaterThan(crashedAt.version);
        expect((await readdir(path.join(tableDir, '_delta_log'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
        if (point === 'commit-visible-before-ack' && !loseSlot) {
          // The commit was in the lake but not acknowledged: the slot sent it again and the txn version skipped it.
          expect(Number(state!.detail['skippedTransactions'])).toBeGreaterThan(0);
        }
        expect((await cdfState(client))?.state).toBe('STOPPED');
      } finally {
        if (child && child.child.exitCode === null && child.child.signalCode === null) {
          child.child.kill('SIGKILL');
          await child.exited;
        }
        await client.query(`SELECT lakets.disable_sync('stock_ticks')`).catch(() => undefined);
        await client.end();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  }

  it('survives a Postgres restart during the sync: it reconnects and continues, nothing lost or doubled', async () => {
    const { url, client: first } = await freshDatabase('pg_restart');
    let client = first;
    const dataDir = tempDir('cdf-pg-restart');
    const tableDir = lakeTableDir(dataDir);
    const generator = new TickGenerator(SYMBOLS, { seed: 5 });
    const expected = new Expected();
    const sync = new CdfSync({ url, lake: fileLake(dataDir), batchMaxRows: 1_000, batchMaxMs: 150, statusIntervalMs: 200, reconnectDelayMs: 300 });
    try {
      await writeRound(client, generator, expected, 300, 0);
      await sync.start();
      await writeRound(client, generator, expected, 500, 1);
      await client.end();

      await server.stop();
      await waitFor(() => sync.status.state !== 'STREAMING', 10_000, 'the sync to notice the outage');
      server = await startEmbeddedPostgres({ dataDir: pgDir, port, fast: true });

      client = new pg.Client({ connectionString: url });
      await client.connect();
      await writeRound(client, generator, expected, 500, 2);
      await sync.waitForCommittedLsn(await currentLsn(client), 40_000);
      expect(sync.status.state).toBe('STREAMING');
      await expectLakeEqualsSource(client, tableDir, expected);
    } finally {
      await sync.stop();
      await client.query(`SELECT lakets.disable_sync('stock_ticks')`).catch(() => undefined);
      await client.end().catch(() => undefined);
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('wal_level check', () => {
  it('refuses clearly when wal_level is not logical and records a non-STREAMING state', async () => {
    const dir = tempDir('cdf-replica-pg');
    const server = await startEmbeddedPostgres({ dataDir: dir, port: await freePort(), fast: true, extraSettings: { wal_level: 'replica' } });
    try {
      const url = await ensureDatabase(server.adminUrl, 'replica_only');
      await migrate(url);
      const error = await runCdfSyncOnce({ url, lake: fileLake(dir) }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(/wal_level is 'replica'.*wal_level = logical/);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      const state = await cdfState(client);
      await client.end();
      expect(state?.state).toBe('UNAVAILABLE');
      expect(String(state?.detail['error'])).toMatch(/wal_level/);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
