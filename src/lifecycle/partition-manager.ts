import type { Job } from '../scheduler/job.ts';

/** Premakes chunks, moves rows out of the default partition, refreshes chunk sizes. */
export const partitionManager: Job = {
  name: 'partition_manager',
  async run({ client }) {
    const { rows } = await client.query<{ chunks_created: number; rows_moved: string; deferred: number }>(
      'SELECT * FROM lakets.run_partition_manager()',
    );
    const r = rows[0] ?? { chunks_created: 0, rows_moved: '0', deferred: 0 };
    return {
      rowsAffected: Number(r.rows_moved),
      detail: { chunksCreated: r.chunks_created, rowsMoved: Number(r.rows_moved), deferred: r.deferred },
    };
  },
};
