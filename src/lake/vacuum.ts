// Deletes what a Delta table no longer needs from its store (Delta's VACUUM): data files that left the
// table (a compaction replaced them) more than the retention period ago, and files no commit ever
// named (the upload of a commit that crashed or lost its version) once they are older than it.
//
// Never deleted:
// - a file live in the current version, or in any version that was current within the retention
//   period (its `remove` is younger than the retention: readers of older versions, time travel);
// - a file younger than the retention period, referenced or not: a writer uploads data files before
//   the commit that names them, so a young unreferenced file may be a commit in flight;
// - anything but our own kinds of objects: data files (`*.parquet` outside `_`-folders), the temp
//   files a local store's crashed writes leave (`.<name>.<uuid>.tmp`) and leftovers of the
//   put-if-absent probe (`_delta_log/_probe/`). The commits and foreign files stay.
//
// Checkpoints are thinned: each one holds the whole table state (every live file, every tombstone
// within the retention), and the sync writes one every few commits, so keeping them all would cost
// far more than the data. Every version stays reconstructible without them, from the commits (all
// kept); they only shorten the replay. Kept: the two newest (readers start from the newest and fall
// back to the one before), any written in the last hour (a reader may be downloading it), and
// within the retention period the newest of each hour (time travel replays at most an hour of
// commits). The rest go.
//
// The snapshot is loaded before the store is listed: a file a commit adds or removes in between is
// either live in that snapshot or younger than the retention, so kept either way.

import { loadSnapshot } from './snapshot.ts';
import type { ObjectInfo } from './store/lake-store.ts';
import { PROBE_PREFIX } from './store/put-if-absent-probe.ts';
import type { LakeTable } from './table.ts';

export interface VacuumOptions {
  /** How long removed and unreferenced files are kept (LAKETS_LAKE_RETENTION). */
  readonly retentionMs: number;
  /** The time to measure ages against (ms); now by default. */
  readonly now?: number;
  /** Objects deleted per run at most (the rest waits for the next run). Default 10,000. */
  readonly maxDeletes?: number;
}

export interface VacuumResult {
  readonly version: number;
  /** Superseded checkpoints deleted (counted in `deleted` too). */
  readonly checkpointsDeleted: number;
  /** Objects deleted, and their bytes. */
  readonly deleted: number;
  readonly deletedBytes: number;
  /** Data files the table still needs (live, or removed within the retention period). */
  readonly referenced: number;
  /** Files no version within the retention names, kept because they are younger than it. */
  readonly youngUnreferenced: number;
  /** Deletable objects left for the next run (over maxDeletes). */
  readonly remaining: number;
}

/** Data files and temp files of our writers; everything else in the table's folder is not ours to delete. */
function isOurs(key: string): boolean {
  if (key.startsWith(PROBE_PREFIX)) return true;
  const segments = key.split('/');
  if (segments.slice(0, -1).some((s) => s.startsWith('_') || s.startsWith('.'))) return false;
  const name = segments[segments.length - 1] as string;
  if (name.startsWith('.')) return name.endsWith('.tmp');
  return name.endsWith('.parquet') && !name.startsWith('_');
}

const CHECKPOINT = /^_delta_log\/(\d{20})\.checkpoint\.parquet$/;
const HOUR_MS = 3_600_000;

/** The checkpoints to delete (see the top of this file). */
function thinCheckpoints(logObjects: readonly ObjectInfo[], now: number, cutoff: number): ObjectInfo[] {
  const checkpoints = logObjects.filter((object) => CHECKPOINT.test(object.key)).sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
  const hoursKept = new Set<number>();
  const deletable: ObjectInfo[] = [];
  checkpoints.forEach((object, index) => {
    const at = object.lastModified.getTime();
    const hour = Math.floor(at / HOUR_MS);
    if (index < 2 || at >= now - HOUR_MS) {
      hoursKept.add(hour);
      return;
    }
    if (at >= cutoff && !hoursKept.has(hour)) {
      hoursKept.add(hour);
      return;
    }
    deletable.push(object);
  });
  return deletable;
}

export async function vacuumTable(table: LakeTable, options: VacuumOptions): Promise<VacuumResult> {
  const now = options.now ?? Date.now();
  const cutoff = now - options.retentionMs;
  const snapshot = await loadSnapshot(table);
  const referenced = new Set<string>();
  for (const file of snapshot.files) if (file.key !== null) referenced.add(file.key);
  for (const tombstone of snapshot.tombstones) {
    // A tombstone without a time cannot be aged: keep its file.
    if (tombstone.key !== null && (tombstone.deletionTimestamp === null || tombstone.deletionTimestamp >= cutoff)) referenced.add(tombstone.key);
  }

  const deletable: ObjectInfo[] = [];
  let youngUnreferenced = 0;
  let referencedFound = 0;
  for (const object of await table.store.list('')) {
    if (!isOurs(object.key)) continue;
    if (referenced.has(object.key)) referencedFound++;
    else if (object.lastModified.getTime() >= cutoff) youngUnreferenced++;
    else deletable.push(object);
  }

  const checkpoints = thinCheckpoints(await table.store.list('_delta_log/'), now, cutoff);
  deletable.push(...checkpoints);

  const batch = deletable.slice(0, options.maxDeletes ?? 10_000);
  let deletedBytes = 0;
  // A few deletes at a time: a remote store gets one request per object.
  const queue = [...batch];
  await Promise.all(
    Array.from({ length: Math.min(8, queue.length) }, async () => {
      for (let object = queue.shift(); object !== undefined; object = queue.shift()) {
        await table.store.delete(object.key);
        deletedBytes += object.size;
      }
    }),
  );
  return {
    version: snapshot.version,
    checkpointsDeleted: batch.filter((object) => CHECKPOINT.test(object.key)).length,
    deleted: batch.length,
    deletedBytes,
    referenced: referencedFound,
    youngUnreferenced,
    remaining: deletable.length - batch.length,
  };
}
