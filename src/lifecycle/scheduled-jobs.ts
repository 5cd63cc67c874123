import { partitionManager } from './partition-manager.ts';
import { rollupRefresh } from './rollup-refresh.ts';
import { tiering } from './tiering.ts';
import { retention } from './retention.ts';
import { lakeCompact } from './lake-compaction.ts';
import { lakeVacuum } from './lake-vacuum.ts';
import type { Job } from '../scheduler/job.ts';
import type { ScheduledJob } from '../scheduler/scheduler.ts';

/** Every scheduled job with its cadences (docs/ARCHITECTURE.md §8). */
export const SCHEDULED_JOBS: ScheduledJob[] = [
  { job: partitionManager, everySeconds: { demo: 10, production: 300 } },
  { job: rollupRefresh, everySeconds: { demo: 5, production: 60 } },
  { job: tiering, everySeconds: { demo: 15, production: 900 } },
  { job: retention, everySeconds: { demo: 15, production: 3600 } },
  { job: lakeCompact, everySeconds: { demo: 60, production: 3600 } },
  { job: lakeVacuum, everySeconds: { demo: 600, production: 3600 } },
];

export const JOBS: Record<string, Job> = Object.fromEntries(SCHEDULED_JOBS.map((s) => [s.job.name, s.job]));
