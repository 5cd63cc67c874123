import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/server/metrics.ts';
import { useTestContext } from '../helpers/context.ts';

const ctx = useTestContext('metrics_cache', { api: true });

describe('/metrics text', () => {
  it('is rendered once per cache period whatever the number of scrapes', async () => {
    const metrics = new Metrics(() => ctx.api.services.pipeline.readNow(), ctx.logger, 60_000);
    const first = await metrics.render();
    metrics.observeJob({ job: 'cache_probe', status: 'succeeded', ms: 5 });
    const scrapes = await Promise.all(Array.from({ length: 20 }, () => metrics.render()));
    // Within the period every scrape gets the text rendered first: the job run is not in it yet.
    expect(new Set(scrapes)).toEqual(new Set([first]));
    expect(first).not.toContain('cache_probe');
  });

  it('renders again once the period is over', async () => {
    const metrics = new Metrics(() => ctx.api.services.pipeline.readNow(), ctx.logger, 0);
    await metrics.render();
    metrics.observeJob({ job: 'cache_probe', status: 'succeeded', ms: 5 });
    expect(await metrics.render()).toMatch(/lakets_job_runs_total\{job="cache_probe",status="succeeded"\} 1/);
  });
});
