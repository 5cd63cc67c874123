import type { JobStatus } from '../services/pipeline.ts';
import { builder } from './builder.ts';
import { publicFailure } from './public-errors.ts';

export const JobStatusRef = builder.objectRef<JobStatus>('JobStatus').implement({
  description: 'The last run of a scheduled job (from lakets.job_runs).',
  fields: (t) => ({
    job: t.exposeString('job'),
    lastStatus: t.exposeString('lastStatus', { description: 'running, succeeded or failed' }),
    lastStartedAt: t.field({ type: 'DateTime', nullable: true, resolve: (j) => j.lastStartedAt }),
    lastFinishedAt: t.field({ type: 'DateTime', nullable: true, resolve: (j) => j.lastFinishedAt }),
    lastDurationMs: t.float({ nullable: true, resolve: (j) => j.lastDurationMs }),
    lastRowsAffected: t.float({ nullable: true, resolve: (j) => j.lastRowsAffected }),
    lastError: t.string({
      nullable: true,
      description: 'Why the last run failed, as a kind ("failed: timed out (details in the server log)"); the message itself is logged by the server.',
      resolve: (j) => publicFailure(j.lastError),
    }),
    failuresLastHour: t.int({ resolve: (j) => j.failuresLastHour }),
  }),
});
