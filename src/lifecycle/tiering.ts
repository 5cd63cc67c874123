import type { Job } from '../scheduler/job.ts';
import { gateCandidates } from './durability-gate.ts';

/** Flags aged chunks tiered once the lake provably holds every one of their rows. */
export const tiering: Job = {
  name: 'tiering',
  run: ({ client, config }) =>
    gateCandidates(
      client,
      config,
      'tier',
      `SELECT c.id, c.table_name, c.chunk_name, c.range_start, c.range_end
         FROM lakets.retention_policies p, LATERAL lakets.tier_candidates(p.table_name) c`,
    ),
};
