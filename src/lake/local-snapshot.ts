// DuckDB reads local files only. A snapshot of a remote table names its files by URL; this hands a
// reader the same snapshot with local copies (downloaded to the table's bounded cache, held until the
// work is done). Prune the files first (filesForRange): only what is left is downloaded.

import { DeltaLogError } from './errors.ts';
import type { DeltaSnapshot } from './snapshot.ts';

export async function withLocalFiles<T>(snapshot: DeltaSnapshot, work: (local: DeltaSnapshot) => Promise<T>): Promise<T> {
  if (snapshot.filesAreLocal || snapshot.files.length === 0) return work({ ...snapshot, filesAreLocal: true });
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
