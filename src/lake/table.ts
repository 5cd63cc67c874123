// A Delta table on a lake store: the store rooted at the table, how to name it in messages, and how
// DuckDB gets local files of its objects (in place on a local store, downloaded to a bounded cache
// from a remote one).

import os from 'node:os';
import path from 'node:path';
import type { LakeStore } from './store/lake-store.ts';
import { LocalFileCache, type LocalFileRequest, type LocalFiles } from './store/local-file-cache.ts';
import type { LakeStoreConfig } from '../config/lake-store.ts';
import { openLakeStore } from './store/open-store.ts';
import { FileLakeStore } from './store/file-store.ts';
import { LazyTempDir } from './store/process-temp-dir.ts';
import { DEFAULT_LAKE_CACHE_MB } from '../config/lake-store.ts';

export interface LakeTable {
  /** The store rooted at the table folder: keys are `_delta_log/…` and the data files' paths. */
  readonly store: LakeStore;
  /** The table's local path (local stores) or URL (remote ones), as messages and snapshots name it. */
  readonly location: string;
  /** Local files of the given objects, pinned until released. */
  localFiles(requests: readonly LocalFileRequest[]): Promise<LocalFiles>;
  /** Closes what the table owns (its cache; the store too when the table opened it). */
  close(): Promise<void>;
}

export interface LakeTableCacheOptions {
  /** Parent folder of the per-process cache folder. Default: the OS temp folder. */
  readonly cacheDir?: string;
  readonly cacheMaxBytes?: number;
}

/** A table in a local folder (what a plain `tableDir` path means everywhere in src/lake). */
export function fileLakeTable(tableDir: string): LakeTable {
  return lakeTableOn(new FileLakeStore(path.resolve(tableDir)));
}

/**
 * A table on `store` (already rooted at the table). Remote tables download into a cache under
 * `cacheDir`; `ownsStore` makes close() close the store as well.
 */
export function lakeTableOn(store: LakeStore, options: LakeTableCacheOptions & { ownsStore?: boolean } = {}): LakeTable {
  const local = store.localRoot;
  if (local !== undefined) {
    return {
      store,
      location: local,
      localFiles: async (requests) => {
        const paths = new Map(requests.map((r) => [r.key, store.localPathOf(r.key) as string]));
        return {
          pathOf: (key) => paths.get(key) ?? (store.localPathOf(key) as string),
          release: () => undefined,
        };
      },
      close: async () => {
        if (options.ownsStore) await store.close();
      },
    };
  }
  const cache = new LocalFileCache(store, new LazyTempDir(options.cacheDir ?? os.tmpdir(), 'lake-cache'), {
    maxBytes: options.cacheMaxBytes ?? DEFAULT_LAKE_CACHE_MB * 1024 * 1024,
  });
  return {
    store,
    location: store.url,
    localFiles: (requests) => cache.acquire(requests),
    close: async () => {
      await cache.close();
      if (options.ownsStore) await store.close();
    },
  };
}

/** Opens `<lake>/<table>` from a lake configuration; close() closes its store too. */
export function openLakeTable(config: LakeStoreConfig, table: string): LakeTable {
  const root = openLakeStore(config);
  const tableStore = root.at(table);
  const opened = lakeTableOn(tableStore, { cacheDir: config.cacheDir, cacheMaxBytes: config.cacheMaxBytes });
  return {
    ...opened,
    close: async () => {
      await opened.close();
      await root.close();
    },
  };
}

/** A table given as a LakeTable, or as a local folder path (what callers passed before stores existed). */
export function asLakeTable(table: LakeTable | string): LakeTable {
  return typeof table === 'string' ? fileLakeTable(table) : table;
}
