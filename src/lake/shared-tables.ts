// The lake tables a process reads, opened once: the API's `ticks` over dropped chunks, the durability
// gate, compaction and vacuum all go through the same store client and the same bounded local cache
// (a remote lake's files are downloaded once for all of them, and the cache bound holds for the
// process, not per reader). The sync opens its own table: it writes, and closes it when it stops.

import type { LakeStoreConfig } from '../config/lake-store.ts';
import { openLakeTable, type LakeTable } from './table.ts';

const tables = new Map<string, LakeTable>();

/** The process's table `<lake>/<name>`, opened on first use; closed by closeSharedLakeTables(). */
export function sharedLakeTable(config: LakeStoreConfig, name: string): LakeTable {
  const key = `${config.url}\u0000${name}\u0000${config.cacheDir}`;
  let table = tables.get(key);
  if (table === undefined) {
    table = openLakeTable(config, name);
    tables.set(key, table);
  }
  return table;
}

/** Closes every shared table (their clients, and the local copies of a remote lake's files). */
export async function closeSharedLakeTables(): Promise<void> {
  const open = [...tables.values()];
  tables.clear();
  await Promise.allSettled(open.map((table) => table.close()));
}
