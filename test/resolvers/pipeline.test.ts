import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { collect, gql, wsClient } from '../helpers/api.ts';
import { runJobOnce } from '../../src/scheduler/job.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';

const ctx = useTestContext('pipeline');

beforeAll(async () => {
  await runJobOnce(ctx.db.url, partitionManager, loadConfig({}), createLogger('silent'));
  await ctx.startApi();
});

const PIPELINE = `{
  pipeline {
    at ticksLastMinute defaultPartitionRows chunkInterval invalidationsPending
    watermarks { rollup granularity watermark pendingInvalidations }
    partitions { active tiered dropped residentRows residentBytes droppedRows }
    jobs { job lastStatus lastDurationMs failuresLastHour lastError }
    latestPrices { symbol price }
    recentPartitions(limit: 5) { name status rowCount }
  }
}`;

describe('pipeline signals', () => {
  it('reports ticks, partitions, jobs and prices in one query', async () => {
    // Rollups refreshed once: their watermarks stand at now, so only writes into closed buckets are logged.
    await ctx.db.query('SELECT * FROM lakets.refresh_rollup_cascade()');
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume)
                   SELECT now() + (g || ' us')::interval, 'AAPL', 100 + g, 1 FROM generate_series(1, 250) g`);
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ('2021-01-01', 'MSFT', 1, 1)`);
    const res = await gql(ctx.api.url, PIPELINE);
    expect(res.errors).toBeUndefined();
    const p = res.data.pipeline;
    expect(p.ticksLastMinute).toBe(250);
    expect(p.defaultPartitionRows).toBe(1);
    expect(p.chunkInterval).toBe('00:01:00');
    // (ticks a few microseconds after now(): always inside the premade current chunk)
    // 251 ticks in two symbols: the (minute, hour, day) buckets of MSFT in 2021 are closed and
    // logged; those of AAPL now are open (the refresh that closes them reads them whole)
    expect(p.invalidationsPending).toBe(3);
    expect(p.watermarks.map((w: { rollup: string }) => w.rollup)).toEqual(['ohlcv_1min', 'ohlcv_1hour', 'ohlcv_1day']);
    expect(p.partitions.active).toBeGreaterThanOrEqual(4);
    expect(p.partitions.residentRows).toBe(250);
    expect(p.jobs).toEqual([expect.objectContaining({ job: 'partition_manager', lastStatus: 'succeeded', failuresLastHour: 0, lastError: null })]);
    expect(p.latestPrices).toEqual([
      { symbol: 'AAPL', price: 350 },
      { symbol: 'MSFT', price: 1 },
    ]);
    expect(p.recentPartitions.length).toBeGreaterThan(0);
    expect(Date.parse(p.recentPartitions[0].name.slice(-15).replace(/(\d{4})(\d\d)(\d\d)_(\d\d)(\d\d)(\d\d)/, '$1-$2-$3T$4:$5:$6Z'))).toBeLessThanOrEqual(Date.now());
  });

  it('exposes the same figures and job durations at /metrics in Prometheus format', async () => {
    ctx.api.metrics.observeJob({ job: 'partition_manager', status: 'succeeded', ms: 12 });
    const res = await fetch(`${ctx.api.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/^lakets_ticks_last_minute 250$/m);
    expect(text).toMatch(/^lakets_partitions\{status="active"\} \d+$/m);
    expect(text).toMatch(/^lakets_default_partition_rows 1$/m);
    expect(text).toMatch(/^lakets_invalidations_pending \d+$/m);
    expect(text).toMatch(/^lakets_job_runs_total\{job="partition_manager",status="succeeded"\} 1$/m);
    expect(text).toMatch(/^lakets_job_duration_seconds_count\{job="partition_manager"\} 1$/m);
    expect(text).toMatch(/^lakets_job_last_duration_seconds\{job="partition_manager"\} [0-9.e-]+$/m);
  });

  it('pushes pipelineUpdated at once and then about every second', async () => {
    const client = wsClient(ctx.api.url);
    const sub = collect<{ pipelineUpdated: { at: string; ticksLastMinute: number } }>(client, `subscription { pipelineUpdated { at ticksLastMinute } }`);
    await waitFor(() => sub.items.length >= 3, 10_000, 'three pipeline snapshots');
    const times = sub.items.map((i) => Date.parse(i.pipelineUpdated.at));
    expect(times[2]!).toBeGreaterThan(times[0]!);
    expect(sub.errors).toEqual([]);
    sub.dispose();
    await client.dispose();
  });
});
