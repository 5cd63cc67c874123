// The lake side of the durability gate (docs/ARCHITECTURE.md §7, H6): a fingerprint of the current state of a
// change-feed table over a time range — (row count, sum of ids, sum of epoch microseconds) — exact
// integers that Postgres computes the same way for a chunk (lakets.chunk_fingerprint).

import { changeFeedCurrentStateSql } from './change-feed.ts';
import { queryRows } from './duckdb.ts';
import { withLocalFiles } from './local-snapshot.ts';
import type { DeltaSnapshot } from './snapshot.ts';
import { quoteIdentifier, quoteLiteral } from './sql.ts';

export interface RangeFingerprint {
  count: bigint;
  sumId: bigint;
  sumUs: bigint;
}

export interface FingerprintOptions {
  timeColumn: string;
  /** A bigint column identifying rows; omitted: time only. */
  idColumn?: string | null;
  /** Day partition column holding the UTC day of timeColumn (files of other days are skipped). */
  dayPartitionColumn?: string;
}

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/**
 * Keeps only the files that can hold rows of [from, to): by day partition, then by min/max stats
 * (stats of timestamps are cut to milliseconds, so the comparison keeps a millisecond of slack).
 */
export function filesForRange(snapshot: DeltaSnapshot, from: Date, to: Date, options: FingerprintOptions): DeltaSnapshot {
  const firstDay = utcDay(from.getTime());
  const lastDay = utcDay(to.getTime() - 1);
  const files = snapshot.files.filter((file) => {
    if (options.dayPartitionColumn) {
      const day = file.partitionValues[options.dayPartitionColumn];
      if (typeof day === 'string' && (day < firstDay || day > lastDay)) return false;
    }
    const min = file.stats?.minValues?.[options.timeColumn];
    const max = file.stats?.maxValues?.[options.timeColumn];
    if (typeof max === 'string' && Date.parse(max) + 1 < from.getTime()) return false;
    if (typeof min === 'string' && Date.parse(min) - 1 >= to.getTime()) return false;
    return true;
  });
  return { ...snapshot, files };
}

export async function rangeFingerprint(snapshot: DeltaSnapshot, from: Date, to: Date, options: FingerprintOptions): Promise<RangeFingerprint> {
  const pruned = filesForRange(snapshot, from, to, options);
  const time = quoteIdentifier(options.timeColumn);
  const where = `${time} >= ${quoteLiteral(from.toISOString())}::TIMESTAMPTZ AND ${time} < ${quoteLiteral(to.toISOString())}::TIMESTAMPTZ`;
  const id = options.idColumn ? `sum(${quoteIdentifier(options.idColumn)})` : '0';
  // Only the pruned files are downloaded from a remote lake.
  const rows = await withLocalFiles(pruned, (local) =>
    queryRows(`
    SELECT count(*)::BIGINT AS n,
           coalesce(${id}, 0)::HUGEINT::VARCHAR AS sum_id,
           coalesce(sum(epoch_us(${time})), 0)::HUGEINT::VARCHAR AS sum_us
      FROM (${changeFeedCurrentStateSql(local, { where })}) AS current_state`),
  );
  const r = rows[0] ?? {};
  return { count: BigInt(String(r.n ?? 0)), sumId: BigInt(String(r.sum_id ?? 0)), sumUs: BigInt(String(r.sum_us ?? 0)) };
}
