import { vacuumTable, type VacuumResult } from '../lake/vacuum.ts';
import type { Job } from '../scheduler/job.ts';
import { syncedLakeTables } from './lake-tables.ts';

/**
 * Deletes the lake's files that no version within the retention period (LAKETS_LAKE_RETENTION) needs:
 * those compaction replaced longer ago, and uploads no commit named that are older than it
 * (src/lake/vacuum.ts).
 */
export const lakeVacuum: Job = {
  name: 'lake_vacuum',
  async run({ client, config }) {
    const { tables, missing } = await syncedLakeTables(client, config);
    const results: Record<string, VacuumResult> = {};
    for (const { name, table } of tables) results[name] = await vacuumTable(table, { retentionMs: config.lake.retentionMs });
    const deleted = Object.values(results).reduce((n, r) => n + r.deleted, 0);
    return { rowsAffected: deleted, detail: { retentionMs: config.lake.retentionMs, tables: results, ...(missing.length ? { noLakeTable: missing } : {}) } };
  },
};
