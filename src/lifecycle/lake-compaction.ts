import { compactTable, type CompactionResult } from '../lake/compaction.ts';
import type { Job } from '../scheduler/job.ts';
import { syncedLakeTables } from './lake-tables.ts';

/**
 * A day is closed, and its small files worth compacting, this long after it ended (UTC): late ticks
 * of the last moments have reached the lake by then. Files that arrive later are small again, and
 * the next runs compact them too.
 */
export const CLOSED_DAY_GRACE_MS = 15 * 60_000;

/** The first day (YYYY-MM-DD, UTC) that is not closed at `now`. */
export function firstOpenDay(now: number): string {
  return new Date(now - CLOSED_DAY_GRACE_MS).toISOString().slice(0, 10);
}

/**
 * Rewrites the small files of the lake's closed days into a few large ones (src/lake/compaction.ts):
 * the same rows and change events, one dataChange-false commit that loses cleanly to the sync.
 */
export const lakeCompact: Job = {
  name: 'lake_compact',
  async run({ client, config, logger }) {
    const { tables, missing } = await syncedLakeTables(client, config);
    const closedBefore = firstOpenDay(Date.now());
    const results: Record<string, CompactionResult> = {};
    for (const { name, table, partition } of tables) {
      const result = await compactTable(table, { partition, closedBefore });
      results[name] = result;
      if (result.gaveUp) logger.info({ table: name, reason: result.gaveUp }, 'lake_compact gave up this run; the next one tries again');
      else if (result.version !== undefined) logger.info({ table: name, ...result }, 'lake_compact committed');
    }
    const removed = Object.values(results).reduce((n, r) => n + (r.version === undefined ? 0 : r.filesRemoved), 0);
    return { rowsAffected: removed, detail: { closedBefore, tables: results, ...(missing.length ? { noLakeTable: missing } : {}) } };
  },
};
