import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { CdfSync } from '../src/cdf/cdf-sync.ts';
import { lakeStoreConfigFromEnv, type LakeStoreConfig } from '../src/config/lake-store.ts';
import { changeFeedColumns, changeFeedPartition, sourceBinding } from '../src/lake/change-feed-table.ts';
import { changeFeedCurrentStateSql } from '../src/lake/change-feed.ts';
import { compactTable } from '../src/lake/compaction.ts';
import { queryRows } from '../src/lake/duckdb.ts';
import { filesForRange } from '../src/lake/fingerprint.ts';
import { withLocalFiles } from '../src/lake/local-snapshot.ts';
import { parseLsn } from '../src/lake/lsn.ts';
import { loadSnapshot } from '../src/lake/snapshot.ts';
import { quoteLiteral } from '../src/lake/sql.ts';
import { openLakeTable, type LakeTable } from '../src/lake/table.ts';
import { vacuumTable } from '../src/lake/vacuum.ts';
import { DeltaTableWriter, type LakeRow } from '../src/lake/writer.ts';
import { createLogger } from '../src/logger.ts';
import { copyTicks, ensureSymbols } from '../src/ticks/tick-table.ts';
import { TickGenerator, nowMicros } from '../src/ticks/generator.ts';
import { TickStreamer } from '../src/ticks/streamer.ts';
import { startAzurite, type StoreServer } from '../test/helpers/object-stores.ts';
import { benchDatabase, percentile } from './harness.ts';

export interface LakeStoreBenchOptions {
  /** Where the lake lives: Azurite started here (az) or a local folder (file). */
  store: 'az' | 'file';
  /** Seconds of the demo's stream (1,000 ticks/s, 10 symbols, commits every 3 s) into the lake. */
  streamSeconds: number;
  /** Ticks of the backlog the sync drains with nothing else running. */
  backlog: number;
  /** Commits of the synthetic closed day (the demo makes 28,800 a day: one every 3 s). */
  dayCommits: number;
  /** Ticks per commit (the demo: 3,000, a commit every 3 s at 1,000 ticks/s). */
  rowsPerCommit: number;
}

/** The demo's stream and batching (LAKETS_TICK_RATE, LAKETS_CDF_BATCH_MS of the demo profile). */
const DEMO_RATE = 1_000;
const DEMO_BATCH_MS = 3_000;

/**
 * The lake on an object store against the demo's load, in one run:
 * 1. the sync into the store while the demo's stream runs: lag from a tick's commit in Postgres to
 *    its Delta commit (sampled WAL positions), and its capacity: a backlog drained with nothing else
 *    running, as a ratio to the demo's ingest rate;
 * 2. a closed day of demo-sized commits written by the sync's own writer, then compacted: files and
 *    objects per day before and after compaction (and after vacuum), and reading one symbol's day
 *    from the store (log replay, downloads into a cold cache, DuckDB) before and after.
 */
export async function benchLakeStore(options: LakeStoreBenchOptions): Promise<Record<string, unknown>> {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-bench-lake-store-'));
  let azurite: StoreServer | undefined;
  let lake: LakeStoreConfig;
  if (options.store === 'az') {
    azurite = await startAzurite();
    await azurite.createBucket('lake');
    lake = lakeStoreConfigFromEnv({ ...azurite.env, LAKETS_LAKE_URL: 'az://lake/bench' }, scratch);
  } else {
    lake = lakeStoreConfigFromEnv({}, scratch);
  }
  try {
    const sync = await benchSync(lake, options);
    const day = await benchDay(lake, options);
    return { store: options.store === 'az' ? 'Azurite (Azure Blob Storage emulator), this machine' : 'local folder', sync, compaction: day };
  } finally {
    await azurite?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

async function benchSync(lake: LakeStoreConfig, options: LakeStoreBenchOptions): Promise<Record<string, unknown>> {
  const bench = await benchDatabase('lake_store');
  const client = new pg.Client({ connectionString: bench.url });
  await client.connect();
  const logger = createLogger('silent');
  const sync = new CdfSync({ url: bench.url, lake, batchMaxMs: DEMO_BATCH_MS, logger });
  try {
    await client.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '10 minutes')`);
    await client.query('SELECT lakets.run_partition_manager()');
    await sync.start();

    // The demo's stream; WAL positions sampled with their times, each one's lag taken when the
    // sync's durable position passes it.
    const streamer = new TickStreamer(bench.url, { rate: DEMO_RATE, symbols: 10 }, logger);
    const pending: Array<{ at: number; lsn: bigint }> = [];
    const lags: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      const probe = new pg.Client({ connectionString: bench.url });
      await probe.connect();
      while (sampling || pending.length > 0) {
        if (sampling) {
          const { rows } = await probe.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
          pending.push({ at: performance.now(), lsn: parseLsn(rows[0]!.lsn) });
        }
        while (pending.length > 0 && sync.status.committedLsn >= pending[0]!.lsn) lags.push(performance.now() - pending.shift()!.at);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await probe.end();
    })();
    const commitsBefore = sync.status.commits;
    await streamer.start();
    await new Promise((resolve) => setTimeout(resolve, options.streamSeconds * 1000));
    await streamer.stop();
    const written = streamer.stats.ticksWritten;
    const streamSeconds = (Date.now() - streamer.stats.startedAt.getTime()) / 1000;
    const { rows: wal } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const t0 = performance.now();
    await sync.waitForCommittedLsn(parseLsn(wal[0]!.lsn), 120_000);
    const caughtUpMs = performance.now() - t0;
    sampling = false;
    await sampler;
    const commits = sync.status.commits - commitsBefore;

    // Capacity: a backlog written with the sync stopped, then drained with nothing else running.
    await sync.stop();
    const specs = await ensureSymbols(client, 10);
    const generator = new TickGenerator(specs, { seed: 7 });
    for (let left = options.backlog; left > 0; left -= 10_000) await copyTicks(client, generator.batch(Math.min(10_000, left), nowMicros(), 1_000_000n));
    const { rows: backlogWal } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    const t1 = performance.now();
    await sync.start();
    await sync.waitForCommittedLsn(parseLsn(backlogWal[0]!.lsn), 600_000);
    const drainSeconds = (performance.now() - t1) / 1000;
    const drainRate = options.backlog / drainSeconds;
    const sorted = [...lags].sort((a, b) => a - b);
    return {
      definition:
        `the demo's stream (${DEMO_RATE} ticks/s, 10 symbols) for ${options.streamSeconds} s with the demo's batching (a commit at least every ${DEMO_BATCH_MS / 1000} s); ` +
        `lag = from a sampled WAL position to the sync's durable position passing it; capacity = ${options.backlog} ticks written with the sync stopped, then drained alone`,
      stream: {
        ticksWritten: written,
        ticksPerSecond: Math.round(written / streamSeconds),
        deltaCommits: commits,
        lagSeconds: { p50: round(percentile(sorted, 50) / 1000), p95: round(percentile(sorted, 95) / 1000), max: round((sorted.at(-1) ?? NaN) / 1000) },
        caughtUpSecondsAfterLastWrite: round(caughtUpMs / 1000),
      },
      capacity: { backlogTicks: options.backlog, drainSeconds: round(drainSeconds), eventsPerSecond: Math.round(drainRate) },
      syncToDemoIngestRatio: round(drainRate / DEMO_RATE),
      targets: { ratio: 1.0, lagSeconds: 5 },
    };
  } finally {
    await sync.stop().catch(() => undefined);
    await client.query(`SELECT lakets.disable_sync('stock_ticks')`).catch(() => undefined);
    await client.end();
    await bench.stop();
  }
}

const COLUMNS = changeFeedColumns([
  { name: 'time', pgType: 'timestamp with time zone' },
  { name: 'symbol', pgType: 'text' },
  { name: 'price', pgType: 'double precision' },
  { name: 'volume', pgType: 'double precision' },
  { name: 'tick_id', pgType: 'bigint' },
]);
const PARTITION = changeFeedPartition('time');

async function benchDay(lake: LakeStoreConfig, options: LakeStoreBenchOptions): Promise<Record<string, unknown>> {
  const dayStart = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate()) - 2 * 86_400_000;
  const day = new Date(dayStart).toISOString().slice(0, 10);
  const writerTable = openLakeTable(lake, 'bench_day');
  try {
    // The sync's writer, the demo's commit size and spacing, over one closed day.
    const writer = await DeltaTableWriter.openTable(writerTable, {
      columns: COLUMNS,
      partition: PARTITION,
      configuration: sourceBinding({ systemIdentifier: 'bench', database: 'bench', slot: 'bench', table: 'public.bench_day' }),
      tableName: 'bench_day',
    });
    const spacingMs = 86_400_000 / options.dayCommits;
    const t0 = performance.now();
    let id = 0;
    for (let c = 0; c < options.dayCommits; c++) {
      const rows: LakeRow[] = [];
      const base = dayStart + c * spacingMs;
      for (let i = 0; i < options.rowsPerCommit; i++) {
        id++;
        const micros = BigInt(Math.floor(base + (i * spacingMs) / options.rowsPerCommit)) * 1000n + BigInt(id % 1000);
        rows.push([new Date(Number(micros / 1000n)).toISOString().replace('Z', `${String(micros % 1000n).padStart(3, '0')}+00`).replace('T', ' '), `SYM${id % 10}`, String(100 + (id % 997) / 10), String(1 + (id % 50)), String(id), 'insert', String(1000 + c), '2026-01-01 00:00:00+00']);
      }
      await writer.commit({ rows, txn: { appId: 'bench', version: BigInt(1000 + c) } });
    }
    const writeSeconds = (performance.now() - t0) / 1000;
    const before = await objectCounts(writerTable, day);
    const readBefore = await timedDayRead(lake, day);

    const t1 = performance.now();
    let runs = 0;
    for (;;) {
      runs++;
      const result = await compactTable(writerTable, { partition: PARTITION, closedBefore: new Date(dayStart + 86_400_000).toISOString().slice(0, 10) });
      if (result.filesRemoved === 0 || result.gaveUp) break;
    }
    const compactSeconds = (performance.now() - t1) / 1000;
    const after = await objectCounts(writerTable, day);
    const readAfter = await timedDayRead(lake, day);
    const vacuum = await vacuumTable(writerTable, { retentionMs: 7 * 86_400_000, now: Date.now() + 8 * 86_400_000 });
    const afterVacuum = await objectCounts(writerTable, day);
    return {
      definition:
        `one closed day of ${options.dayCommits} commits of ${options.rowsPerCommit} ticks (the demo makes 28,800 commits of 3,000 a day) written by the sync's writer, ` +
        `compacted by lake_compact's function; a read = one symbol's day from a cold cache: log replay, downloads, DuckDB over the current state`,
      write: { seconds: round(writeSeconds), commitsPerSecond: round(options.dayCommits / writeSeconds) },
      objectsPerDay: { beforeCompaction: before, afterCompaction: after, afterVacuum: afterVacuum },
      compaction: { runs: runs - 1, seconds: round(compactSeconds), vacuumDeleted: vacuum.deleted },
      readOneSymbolDay: { before: readBefore, after: readAfter, speedup: round(readBefore.coldSeconds / readAfter.coldSeconds) },
      targets: { dataFilesPerDayAfter: 'a few', speedup: 5 },
    };
  } finally {
    await writerTable.close();
  }
}

async function objectCounts(table: LakeTable, day: string): Promise<{ liveDataFiles: number; dataObjects: number; logObjects: number; bytes: number }> {
  const snapshot = await loadSnapshot(table);
  const objects = await table.store.list('');
  const data = objects.filter((o) => o.key.startsWith(`date=${day}/`));
  return {
    liveDataFiles: snapshot.files.filter((f) => f.partitionValues['date'] === day).length,
    dataObjects: data.length,
    logObjects: objects.filter((o) => o.key.startsWith('_delta_log/')).length,
    bytes: data.reduce((n, o) => n + o.size, 0),
  };
}

/** One symbol's day, as `ticks` reads dropped history: a fresh table (cold cache), then again (warm). */
async function timedDayRead(lake: LakeStoreConfig, day: string): Promise<{ coldSeconds: number; warmSeconds: number; files: number; rows: number }> {
  const table = openLakeTable(lake, 'bench_day');
  try {
    const read = async () => {
      const snapshot = await loadSnapshot(table);
      const from = new Date(`${day}T00:00:00Z`);
      const to = new Date(from.getTime() + 86_400_000);
      const pruned = filesForRange(snapshot, from, to, { timeColumn: 'time', dayPartitionColumn: 'date' });
      const where = `symbol = 'SYM3' AND "time" >= ${quoteLiteral(from.toISOString())}::TIMESTAMPTZ AND "time" < ${quoteLiteral(to.toISOString())}::TIMESTAMPTZ`;
      const rows = await withLocalFiles(pruned, (local) => queryRows(`SELECT count(*)::BIGINT AS n, sum(price) AS p FROM (${changeFeedCurrentStateSql(local, { where })}) AS s`));
      return { files: pruned.files.length, rows: Number(rows[0]?.['n'] ?? 0) };
    };
    const t0 = performance.now();
    const cold = await read();
    const coldSeconds = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    await read();
    const warmSeconds = (performance.now() - t1) / 1000;
    return { coldSeconds: round(coldSeconds, 3), warmSeconds: round(warmSeconds, 3), ...cold };
  } finally {
    await table.close();
  }
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
