// DuckDB reads local files only. A snapshot of a remote table names its files by URL; this hands a
// reader the same snapshot with local copies (downloaded to the table's bounded cache, held until the
// work is done). Prune the files first (filesForRange): only what is left is downloaded.

import { DeltaLogError } from './errors.ts';
import type { DeltaSnapshot } from './snapshot.ts';

export interface LocalReadLimits {
  /** Most files one read may download. */
  readonly maxFiles?: number;
  /** Most bytes (by the log's sizes) one read may download. */
  readonly maxBytes?: number;
}

/** A read would download more of a remote lake than its limits allow: narrow it (or compact the lake). */
export class LakeReadTooLargeError extends Error {
  override readonly name: string = 'LakeReadTooLargeError';
  constructor(
    message: string,
    readonly files: number,
    readonly bytes: number,
  ) {
    super(message);
  }
}

export async function withLocalFiles<T>(
  snapshot: DeltaSnapshot,
  work: (local: DeltaSnapshot) => Promise<T>,
  limits: LocalReadLimits = {},
): Promise<T> {
  if (snapshot.filesAreLocal || snapshot.files.length === 0) return work({ ...snapshot, filesAreLocal: true });
  const bytes = snapshot.files.reduce((sum, file) => sum + file.size, 0);
  if ((limits.maxFiles !== undefined && snapshot.files.length > limits.maxFiles) || (limits.maxBytes !== undefined && bytes > limits.maxBytes)) {
    throw new LakeReadTooLargeError(
      `the read needs ${snapshot.files.length} files (${bytes} bytes) of ${snapshot.tableDir}, over its limit of ` +
        `${limits.maxFiles ?? 'any'} files and ${limits.maxBytes ?? 'any'} bytes: narrow the range`,
      snapshot.files.length,
      bytes,
    );
  }
  const keys = snapshot.files.map((file) => {
    if (file.key === null) throw new DeltaLogError(`data file ${file.path} is not inside the table`, snapshot.tableDir);
    return file.key;
  });
  const local = await snapshot.table.localFiles(snapshot.files.map((file, i) => ({ key: keys[i] as string, size: file.size })));
  try {
    return await work({
      ...snapshot,
      filesAreLocal: true,
      files: snapshot.files.map((file, i) => ({ ...file, localPath: local.pathOf(keys[i] as string) })),
    });
  } finally {
    local.release();
  }
}

/** Throws unless DuckDB can read the snapshot's files where `localPath` says. */
export function assertFilesAreLocal(snapshot: DeltaSnapshot): void {
  if (!snapshot.filesAreLocal && snapshot.files.length > 0) {
    throw new Error(`the files of ${snapshot.tableDir} are remote: read them inside withLocalFiles(snapshot, …)`);
  }
}
