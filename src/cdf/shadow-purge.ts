// The shadow table keeps every change event until the lake holds it; these functions delete the
// events a Delta commit holds (by their `_seq`) and find them again after a crash.
//
// Each commit records the `_seq` ranges of its shadow rows in its commitInfo (lakets.shadowSeqRanges),
// so that rows a crash kept from being purged can be purged later instead of being written twice.

import type pg from 'pg';
import type { DeltaTableWriter } from '../lake/writer.ts';
import type { Logger } from '../logger.ts';

/** Beyond this many ranges a commit does not record them (its purge after a crash is skipped). */
export const MAX_RECORDED_RANGES = 50_000;
/** How many of the latest commits a snapshot purges the recorded shadow rows of. */
const RECHECK_COMMITS = 64;

/** A [lo, hi] range of `_seq` values as text, the way commits record them and the purge takes them. */
export type SeqRange = readonly [string, string];

/** Sorted, merged [lo, hi] ranges of sequence values. */
export function seqRanges(seqs: readonly bigint[]): [bigint, bigint][] {
  const sorted = [...seqs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const ranges: [bigint, bigint][] = [];
  for (const seq of sorted) {
    const last = ranges[ranges.length - 1];
    if (last && seq <= last[1] + 1n) {
      if (seq > last[1]) last[1] = seq;
    } else ranges.push([seq, seq]);
  }
  return ranges;
}

export function seqRangesAsText(seqs: readonly bigint[]): [string, string][] {
  return seqRanges(seqs).map(([lo, hi]) => [lo.toString(), hi.toString()]);
}

/** The commitInfo field recording a commit's ranges, unless there are too many to record. */
export function recordedRangesInfo(ranges: readonly SeqRange[]): { shadowSeqRanges?: SeqRange[] } {
  return ranges.length <= MAX_RECORDED_RANGES ? { shadowSeqRanges: [...ranges] } : {};
}

/** Deletes the shadow rows of `table` whose `_seq` lies in one of the ranges (one index range scan each). */
export async function purgeShadowRanges(client: pg.ClientBase, table: string, ranges: readonly SeqRange[]): Promise<void> {
  if (ranges.length === 0) return;
  await client.query('SELECT lakets.purge_synced_shadow($1, $2::bigint[], $3::bigint[])', [
    table,
    ranges.map((r) => r[0]),
    ranges.map((r) => r[1]),
  ]);
}

/**
 * The shadow `_seq` ranges a commit recorded (commitInfo.lakets.shadowSeqRanges); [] for a commit
 * with no shadow rows, not written by the sync, or cleaned up long ago; undefined when it had too
 * many ranges to record.
 */
export async function recordedShadowRanges(writer: DeltaTableWriter, version: number): Promise<SeqRange[] | undefined> {
  const commitInfo = await writer.readCommitInfo(version);
  // A commit file removed by log cleanup is older than any commit whose purge can be pending.
  if (commitInfo === undefined) return [];
  const info = commitInfo['lakets'] as { shadowSeqRanges?: SeqRange[]; transactions?: number } | undefined;
  if (info?.shadowSeqRanges) return info.shadowSeqRanges;
  // A sync commit without ranges had too many to record; anything else holds no shadow rows.
  return info?.transactions !== undefined ? undefined : [];
}

/**
 * Before a snapshot (a new slot): purge the shadow rows of the latest commits, which the lake holds
 * but whose purge may not have happened (a crash between a commit and its settlement, then the slot
 * lost). Unpurged, the snapshot would write them a second time. Unsettled commits are few (their
 * rows stay under the batch size, plus one settlement in progress); the latest RECHECK_COMMITS are read.
 */
export async function purgeRecentCommits(client: pg.ClientBase, table: string, writer: DeltaTableWriter, log: Logger | undefined): Promise<void> {
  for (let version = writer.version; version >= 0 && version > writer.version - RECHECK_COMMITS; version--) {
    const ranges = await recordedShadowRanges(writer, version);
    if (ranges === undefined) {
      log?.warn({ table, version }, 'cdf_sync: a recent commit recorded no shadow ranges; its shadow rows, if any remain, are snapshotted again');
    } else {
      await purgeShadowRanges(client, table, ranges);
    }
  }
}
