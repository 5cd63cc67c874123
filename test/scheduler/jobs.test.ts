import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { runJobOnce, type Job } from '../../src/scheduler/job.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import { TickStreamer } from '../../src/ticks/streamer.ts';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';

const ctx = useTestContext('jobs');
const config = loadConfig({});
const logger = createLogger('silent');


async function runs(job: string) {
  const { rows } = await ctx.db.query<{ status: string; rows_affected: string | null; detail: Record<string, unknown> }>(
    'SELECT status, rows_affected, detail FROM lakets.job_runs WHERE job = $1 ORDER BY id',
    [job],
  );
  return rows;
}

describe('jobs', () => {
  it('runs the partition manager once and logs the run in lakets.job_runs', async () => {
    const outcome = await runJobOnce(ctx.db.url, partitionManager, config, logger);
    expect(outcome.status).toBe('succeeded');
    const logged = await runs('partition_manager');
    expect(logged).toHaveLength(1);
    expect(logged[0]!.status).toBe('succeeded');
    expect(logged[0]!.detail).toMatchObject({ chunksCreated: expect.any(Number), rowsMoved: 0 });
  });

  it('skips a run while another run of the same job holds its lock', async () => {
    const holder = new pg.Client({ connectionString: ctx.db.url });
    await holder.connect();
    await holder.query(`SELECT pg_advisory_lock(hashtext('lakets.job'), hashtext('partition_manager'))`);
    const outcome = await runJobOnce(ctx.db.url, partitionManager, config, logger);
    expect(outcome.status).toBe('skipped');
    await holder.end();
    expect((await runs('partition_manager')).at(-1)!.status).toBe('skipped');
  });

  it('records a failing job as failed and keeps scheduling the others', async () => {
    const failing: Job = {
      name: 'always_fails',
      run: async ({ client }) => {
        await client.query('SELECT 1/0');
        return {};
      },
    };
    let counted = 0;
    const counting: Job = {
      name: 'counts',
      run: async () => ({ rowsAffected: ++counted }),
    };
    const scheduler = new Scheduler(ctx.db.url, config, logger);
    scheduler.schedule({ job: failing, everySeconds: { demo: 1, production: 1 } });
    scheduler.schedule({ job: counting, everySeconds: { demo: 1, production: 1 } });
    await waitFor(() => (scheduler.status.get('always_fails')?.failures ?? 0) >= 2 && counted >= 2, 10_000, 'two runs of each job');
    await scheduler.stop();
    const failed = await runs('always_fails');
    expect(failed.every((r) => r.status === 'failed')).toBe(true);
    expect(failed[0]!.detail).toEqual({ error: 'division by zero' });
    expect((await runs('counts')).every((r) => r.status === 'succeeded')).toBe(true);
  });

  it('streams ticks at the configured rate and logs the session', async () => {
    await runJobOnce(ctx.db.url, partitionManager, config, logger);
    const streamer = new TickStreamer(ctx.db.url, { rate: 500, symbols: 12 }, logger);
    await streamer.start();
    await new Promise((r) => setTimeout(r, 2_000));
    await streamer.stop();
    const { rows } = await ctx.db.query<{ n: string; symbols: string }>('SELECT count(*) AS n, count(DISTINCT symbol) AS symbols FROM stock_ticks');
    const n = Number(rows[0]!.n);
    expect(n).toBe(streamer.stats.ticksWritten);
    expect(n).toBeGreaterThan(500);
    expect(n).toBeLessThan(1_600);
    expect(Number(rows[0]!.symbols)).toBe(12); // ten seeded assets and two synthetic ones
    const { rows: assets } = await ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM stock_assets WHERE exchange = 'SIM'`);
    expect(Number(assets[0]!.n)).toBe(2);
    expect(streamer.stats.failures).toBe(0);
    const logged = await runs('stream_ticks');
    expect(logged.at(-1)).toMatchObject({ status: 'succeeded', rows_affected: String(n) });
  });

  it('sends a back-dated burst in burst mode', async () => {
    const { rows: before } = await ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM stock_ticks WHERE time < now() - interval '25 seconds'`);
    const streamer = new TickStreamer(ctx.db.url, { rate: 100, symbols: 10, burstEveryMs: 300, burstSize: 400 }, logger);
    await streamer.start();
    await new Promise((r) => setTimeout(r, 1_000));
    await streamer.stop();
    const { rows: after } = await ctx.db.query<{ n: string }>(`SELECT count(*) AS n FROM stock_ticks WHERE time < now() - interval '25 seconds'`);
    expect(Number(after[0]!.n) - Number(before[0]!.n)).toBeGreaterThanOrEqual(400);
  });
});
