import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { CdfSync } from '../src/cdf/cdf-sync.ts';
import { copyTicks, ensureSymbols } from '../src/ticks/tick-table.ts';
import { TickGenerator, nowMicros } from '../src/ticks/generator.ts';
import { parseLsn } from '../src/lake/lsn.ts';
import { createLogger } from '../src/logger.ts';
import { lakeStoreConfigFromEnv } from '../src/config/lake-store.ts';
import { benchDatabase } from './harness.ts';
import { benchIngest } from './ingest.ts';

export interface LakeBenchOptions {
  rows: number;
  batchSize: number;
  /** Rounds of the capacity comparison (backlog written with the sync stopped, then drained). */
  rounds: number;
}

/**
 * Sync throughput against ingest, in one run: ticks are COPYed as fast as this machine takes them
 * (every trigger on, the shadow mirror included) while cdf_sync streams them into the Delta table;
 * the sync keeps up when its event rate over the whole run is at least the ingest rate and its lag
 * stays bounded. Then the ingest ratio with every trigger of the product against plain COPY.
 */
export async function benchLake(options: LakeBenchOptions): Promise<Record<string, unknown>> {
  const bench = await benchDatabase('lake');
  const lakeRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-bench-lake-'));
  const client = new pg.Client({ connectionString: bench.url });
  await client.connect();
  const sync = new CdfSync({ url: bench.url, lake: lakeStoreConfigFromEnv({}, lakeRoot), logger: createLogger('silent') });
  try {
    await client.query(`SELECT lakets.set_chronotable_policy('stock_ticks', '10 minutes')`);
    await client.query('SELECT lakets.run_partition_manager()');
    await sync.start();
    const specs = await ensureSymbols(client, 10);
    const gen = new TickGenerator(specs, { seed: 21 });
    const batches = Math.ceil(options.rows / options.batchSize);

    const lagSamples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      const probe = new pg.Client({ connectionString: bench.url });
      await probe.connect();
      while (sampling) {
        const { rows } = await probe.query<{ lag: string }>(
          `SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), coalesce(committed_lsn, '0/0'))::text AS lag FROM lakets.cdf_state WHERE table_name = 'stock_ticks'`,
        );
        lagSamples.push(Number(rows[0]?.lag ?? 0));
        await new Promise((r) => setTimeout(r, 250));
      }
      await probe.end();
    })();

    const t0 = performance.now();
    for (let b = 0; b < batches; b++) await copyTicks(client, gen.batch(options.batchSize, nowMicros(), 1_000_000n));
    const ingestMs = performance.now() - t0;
    const { rows: wal } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
    await sync.waitForCommittedLsn(parseLsn(wal[0]!.lsn), 600_000);
    const caughtUpMs = performance.now() - t0;
    sampling = false;
    await sampler;

    const rows = batches * options.batchSize;
    const ingestRate = rows / (ingestMs / 1000);
    const lagAfterIngestMs = Math.round(caughtUpMs - ingestMs);
    const concurrentCommits = sync.status.commits;

    // Capacity: the same volume written while the sync is stopped (the whole machine for ingest),
    // then drained from the slot (the whole machine for the sync). Several rounds, each ratio from
    // its own adjacent pair: this shared 2-core machine's speed drifts by tens of percent over minutes.
    await sync.stop();
    const capacityRounds: Array<{ ingestRowsPerSecond: number; syncDrainEventsPerSecond: number; drainSeconds: number; ratio: number }> = [];
    for (let round = 0; round < options.rounds; round++) {
      const t1 = performance.now();
      for (let b = 0; b < batches; b++) await copyTicks(client, gen.batch(options.batchSize, nowMicros(), 1_000_000n));
      const backlogIngestMs = performance.now() - t1;
      const { rows: wal2 } = await client.query<{ lsn: string }>('SELECT pg_current_wal_insert_lsn()::text AS lsn');
      const t2 = performance.now();
      await sync.start();
      await sync.waitForCommittedLsn(parseLsn(wal2[0]!.lsn), 600_000);
      const drainMs = performance.now() - t2;
      await sync.stop();
      capacityRounds.push({
        ingestRowsPerSecond: Math.round(rows / (backlogIngestMs / 1000)),
        syncDrainEventsPerSecond: Math.round(rows / (drainMs / 1000)),
        drainSeconds: round2(drainMs / 1000),
        ratio: round2(backlogIngestMs / drainMs, 3),
      });
      console.log(`capacity round ${round + 1}: ${JSON.stringify(capacityRounds[round])}`);
    }
    const medianRound = [...capacityRounds].sort((a, b) => a.ratio - b.ratio)[Math.floor(capacityRounds.length / 2)]!;
    const ingestRatio = await benchIngest({ rows: options.rows, batchSize: options.batchSize, latencySeconds: 4, symbols: 10, triggerSet: 'all' });
    return {
      dataset: { rows, batchSize: options.batchSize, symbols: 10, changeEvents: rows, commitBatching: 'sync defaults (10 s or 100k rows)' },
      concurrent: {
        ingestRowsPerSecond: Math.round(ingestRate),
        ingestSeconds: round2(ingestMs / 1000),
        caughtUpSecondsAfterLastWrite: round2(lagAfterIngestMs / 1000),
        maxLagWalBytes: Math.max(0, ...lagSamples),
        deltaCommits: concurrentCommits,
      },
      capacity: {
        definition: `${rows} events written with the sync stopped, then drained from the slot; ratio = drain rate / that ingest rate, per round`,
        rounds: capacityRounds,
        medianRound,
      },
      syncToIngestRatio: medianRound.ratio,
      syncToIngestRatioMin: Math.min(...capacityRounds.map((r) => r.ratio)),
      syncTarget: 1.0,
      allTriggersIngest: {
        triggers: ingestRatio.triggers,
        withTriggers: ingestRatio.withTriggers,
        plainCopy: ingestRatio.plainCopy,
        ratio: ingestRatio.ratio,
        target: 0.45,
      },
    };
  } finally {
    await sync.stop().catch(() => undefined);
    await client.query(`SELECT lakets.disable_sync('stock_ticks')`).catch(() => undefined);
    await client.end();
    await bench.stop();
    fs.rmSync(lakeRoot, { recursive: true, force: true });
  }
}

function round2(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
