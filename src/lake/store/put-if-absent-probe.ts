// Proves that a store enforces create-if-absent before the sync trusts it with Delta commits. A store
// that silently overwrites (some S3-compatible servers ignore If-None-Match) would let two writers
// both "create" one version, and the second would erase the first's commit: rows lost with no error.
//
// The probe creates one object under `_delta_log/_probe/` twice with different content: the second
// must be refused (ObjectExistsError) and the first content must still be there. Delta readers ignore
// the folder (they take only exact commit and checkpoint names), and the probe deletes its object.

import { randomUUID } from 'node:crypto';
import { ObjectExistsError } from './errors.ts';
import type { LakeStore } from './lake-store.ts';

export const PROBE_PREFIX = '_delta_log/_probe/';

export interface PutIfAbsentVerdict {
  /** True when a second create of the same key was refused and the first content kept. */
  readonly enforced: boolean;
  /** The probe object's URL. */
  readonly location: string;
  /** One sentence for logs and `lake.error`. */
  readonly detail: string;
}

/** The store does not enforce create-if-absent: commits on it would not be atomic. */
export class PutIfAbsentNotEnforcedError extends Error {
  override readonly name: string = 'PutIfAbsentNotEnforcedError';
  constructor(readonly verdict: PutIfAbsentVerdict) {
    super(verdict.detail);
  }
}

/**
 * Runs the probe on `store` (a table's store: the probe goes under its `_delta_log/`). Store failures
 * (unreachable, denied, no such bucket) propagate as LakeStoreError: they are no verdict.
 */
export async function probePutIfAbsent(store: LakeStore): Promise<PutIfAbsentVerdict> {
  const key = `${PROBE_PREFIX}${randomUUID()}`;
  const location = store.locationOf(key);
  const first = `lakets put-if-absent probe ${randomUUID()} first\n`;
  const second = `lakets put-if-absent probe ${randomUUID()} second\n`;
  try {
    await store.createIfAbsent(key, first);
    let refused = false;
    try {
      await store.createIfAbsent(key, second);
    } catch (error) {
      if (!(error instanceof ObjectExistsError)) throw error;
      refused = true;
    }
    const kept = (await store.read(key)).toString('utf8') === first;
    if (refused && kept) {
      return { enforced: true, location, detail: `${store.url} enforces create-if-absent (a second create of ${location} was refused)` };
    }
    const what = refused ? 'refused the second create but changed the object' : 'accepted a second create of an existing object and overwrote it';
    return {
      enforced: false,
      location,
      detail:
        `${store.url} does not enforce create-if-absent: it ${what}. Delta commits on it would not be atomic, ` +
        `so the lake refuses it (use a store that honours If-None-Match: *, e.g. AWS S3, Azure Blob Storage)`,
    };
  } finally {
    await store.delete(key).catch(() => undefined);
  }
}

/** Runs the probe and throws PutIfAbsentNotEnforcedError unless the store enforces create-if-absent. */
export async function assertPutIfAbsent(store: LakeStore): Promise<PutIfAbsentVerdict> {
  const verdict = await probePutIfAbsent(store);
  if (!verdict.enforced) throw new PutIfAbsentNotEnforcedError(verdict);
  return verdict;
}
