// The one storage interface under the lake: the Delta writer, the checkpointer, the log reader, the
// snapshot loader and the range fingerprint all go through it, whatever the lake is on (a local
// folder, Azure Blob Storage, S3). It offers only what Delta needs of a store:
//
// - whole-object reads and replacing writes (checkpoints, `_last_checkpoint`);
// - create-if-absent, which Delta's commit protocol rests on: a commit file may be created only if no
//   writer created it first, and a lost race must be told apart from any other failure;
// - staged uploads: DuckDB writes Parquet to a local file, which becomes the object when published
//   (local stores publish it in place with fsyncs; remote stores upload it);
// - listing a prefix with sizes and modification times, stat, delete, and download to a local file
//   (DuckDB reads local files only: no httpfs or azure extension is available offline).
//
// Keys are '/'-separated paths relative to the store's root, without empty, '.' or '..' segments.

import { LakeStoreError } from './errors.ts';

export type LakeStoreKind = 'file' | 'az' | 's3';

export interface ObjectInfo {
  /** The key relative to the store's root. */
  readonly key: string;
  readonly size: number;
  readonly lastModified: Date;
}

/** A local file that becomes an object when published. */
export interface StagedObject {
  /** Where to write the content (a temp file). */
  readonly localPath: string;
  /** Makes the file durable in the store under its key (replacing any object there), removes the temp file. */
  publish(): Promise<ObjectInfo>;
  /** Removes the temp file without publishing it (safe to call after publish, or twice). */
  discard(): Promise<void>;
}

export interface CreateOptions {
  /**
   * Called once the content is ready but not yet visible under its name (a local store: its fsynced
   * temp file exists; a remote one: just before the request). Tests crash the process here.
   */
  readonly beforePublish?: () => void;
}

export interface ListOptions {
  /** Only keys greater than this one (S3 lists from there; the others filter). */
  readonly startAfter?: string;
}

export interface LakeStore {
  readonly kind: LakeStoreKind;
  /** The root as a URL (file:///…, az://container/prefix, s3://bucket/prefix), without credentials. */
  readonly url: string;
  /** For a local store, the folder of its root (DuckDB reads objects in place); undefined for remote ones. */
  readonly localRoot: string | undefined;

  /** A store rooted at `prefix` under this one, sharing its client. */
  at(prefix: string): LakeStore;
  /** The URL (or path, for local stores) of a key, for messages. */
  locationOf(key: string): string;
  /** The local file of a key on a local store; undefined on remote stores. */
  localPathOf(key: string): string | undefined;

  /** The whole object. Throws ObjectNotFoundError when it does not exist. */
  read(key: string): Promise<Buffer>;
  /** Writes the object whole, replacing it if present; durable when it returns. */
  write(key: string, data: string | Uint8Array): Promise<void>;
  /**
   * Creates the object only if it does not exist; throws ObjectExistsError if it does (nothing
   * written). On a remote store an existing object with exactly these bytes counts as created: it is
   * this write, whose answer was lost and whose retry was refused.
   */
  createIfAbsent(key: string, data: string | Uint8Array, options?: CreateOptions): Promise<void>;
  /** A local temp file to be published as `key` (see StagedObject). */
  stage(key: string): Promise<StagedObject>;
  /** Copies the object to a local file (created or replaced). Throws ObjectNotFoundError. */
  download(key: string, localPath: string): Promise<ObjectInfo>;
  /** Every object whose key starts with `prefix`, at any depth, sorted by key. */
  list(prefix: string, options?: ListOptions): Promise<ObjectInfo[]>;
  /** The object's size and modification time, or undefined when it does not exist. */
  stat(key: string): Promise<ObjectInfo | undefined>;
  /** Deletes the object; deleting an absent object is not an error. */
  delete(key: string): Promise<void>;
  /** Releases the client and removes this store's temp files. */
  close(): Promise<void>;
}

/** Throws unless `key` is a relative '/'-separated path with no empty, '.' or '..' segment. */
export function assertKey(key: string): void {
  if (key.length === 0 || key.length > 1024) throw new LakeStoreError(`invalid object key ${JSON.stringify(key)}: empty or too long`);
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..' || segment.includes('\\') || segment.includes('\0')) {
      throw new LakeStoreError(`invalid object key ${JSON.stringify(key)}: each '/'-separated segment must be a plain name`);
    }
  }
}

/** A prefix argument of list/at: '' (everything) or a key-like path, with or without a trailing '/'. */
export function assertPrefix(prefix: string): void {
  if (prefix === '') return;
  assertKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}

/** `a/b` + `c` -> `a/b/c`; either may be empty. */
export function joinKey(prefix: string, key: string): string {
  if (prefix === '') return key;
  if (key === '') return prefix;
  return `${prefix.replace(/\/+$/, '')}/${key}`;
}
