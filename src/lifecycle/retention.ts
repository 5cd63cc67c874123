import type { Job } from '../scheduler/job.ts';
import { gateCandidates } from './durability-gate.ts';

/** Drops tiered chunks past the drop threshold, re-proving durability under the chunk lock. */
export const retention: Job = {
  name: 'retention',
  run: async ({ client, config }) => {
    const result = await gateCandidates(
      client,
      config,
      'drop',
      `SELECT c.id, c.table_name, c.chunk_name, c.range_start, c.range_end
         FROM lakets.retention_policies p, LATERAL lakets.retention_candidates(p.table_name) c`,
    );
    // The job ledger is observability, not history: keep a week of it.
    const { rows } = await client.query<{ n: string }>('SELECT lakets.prune_job_runs() AS n');
    return { ...result, detail: { ...result.detail, jobRunsPruned: Number(rows[0]?.n ?? 0) } };
  },
};
