// The lake on a local folder (file://). Keeps the durability guarantees of durable-files.ts:
// - create-if-absent writes a temp file, fsyncs it and hard-links it to its name: link(2) fails with
//   EEXIST when the name exists, so two writers can never both create one Delta version; the folder is
//   fsynced after the link so the name survives a power cut;
// - replacing writes and staged files go through temp file + fsync + rename + fsync of the folder;
// - folders created on the way are fsynced into their parents.
// Temp files are named `.<name>.<uuid>.tmp` beside their target; a crash can leave one behind, and
// nothing reads it (Delta readers only take exact names; names starting with '.' are hidden).

import { randomUUID } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { fsyncDir, linkIfAbsent, moveIntoPlace, PutIfAbsentConflictError, replaceFileDurably, writeTempFile } from '../durable-files.ts';
import { LakeStoreError, ObjectExistsError, ObjectNotFoundError } from './errors.ts';
import { assertKey, assertPrefix, joinKey, type CreateOptions, type LakeStore, type ListOptions, type ObjectInfo, type StagedObject } from './lake-store.ts';

/** Files stat'ed at once by a listing (libuv runs them on its thread pool). */
const STAT_CONCURRENCY = 16;

export class FileLakeStore implements LakeStore {
  readonly kind = 'file' as const;
  readonly url: string;
  readonly localRoot: string;

  constructor(root: string) {
    this.localRoot = path.resolve(root);
    this.url = pathToFileURL(this.localRoot).href;
  }

  at(prefix: string): FileLakeStore {
    assertPrefix(prefix);
    return new FileLakeStore(path.join(this.localRoot, ...prefix.split('/').filter((s) => s !== '')));
  }

  locationOf(key: string): string {
    return key === '' ? this.localRoot : path.join(this.localRoot, ...key.split('/'));
  }

  localPathOf(key: string): string {
    assertKey(key);
    return this.locationOf(key);
  }

  async read(key: string): Promise<Buffer> {
    const file = this.localPathOf(key);
    try {
      return await readFile(file);
    } catch (error) {
      throw this.translate(error, file);
    }
  }

  async write(key: string, data: string | Uint8Array): Promise<void> {
    const file = this.localPathOf(key);
    await ensureDir(path.dirname(file));
    await replaceFileDurably(file, data);
  }

  async createIfAbsent(key: string, data: string | Uint8Array, options: CreateOptions = {}): Promise<void> {
    const file = this.localPathOf(key);
    await ensureDir(path.dirname(file));
    const temp = await writeTempFile(file, data);
    options.beforePublish?.();
    try {
      await linkIfAbsent(temp, file);
    } catch (error) {
      // link(2) is atomic and never retried, so unlike on object stores a conflict is never our own write.
      if (error instanceof PutIfAbsentConflictError) throw new ObjectExistsError(file);
      throw error;
    }
  }

  async stage(key: string): Promise<StagedObject> {
    const file = this.localPathOf(key);
    await ensureDir(path.dirname(file));
    const temp = path.join(path.dirname(file), `.${path.basename(file)}.${randomUUID()}.tmp`);
    return {
      localPath: temp,
      publish: async () => {
        await moveIntoPlace(temp, file);
        const info = await stat(file);
        return { key, size: info.size, lastModified: info.mtime };
      },
      discard: () => rm(temp, { force: true }),
    };
  }

  async download(key: string, localPath: string): Promise<ObjectInfo> {
    const file = this.localPathOf(key);
    try {
      await copyFile(file, localPath);
      const info = await stat(file);
      return { key, size: info.size, lastModified: info.mtime };
    } catch (error) {
      throw this.translate(error, file);
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ObjectInfo[]> {
    assertPrefix(prefix);
    // Walk only the folder the prefix names (its last segment may be a partial name); names are
    // selected first, so that only the selected files are stat'ed (a long log listed from a version
    // costs the names after it, not a stat of every commit).
    const slash = prefix.lastIndexOf('/');
    const base = slash < 0 ? '' : prefix.slice(0, slash);
    const keys: string[] = [];
    await this.walk(base, prefix, keys);
    const after = options.startAfter;
    const selected = (after === undefined ? keys : keys.filter((key) => key > after)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const infos: (ObjectInfo | undefined)[] = new Array(selected.length);
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(STAT_CONCURRENCY, selected.length) }, async () => {
        for (let i = next++; i < selected.length; i = next++) {
          const key = selected[i] as string;
          // A file removed between the listing and its stat is simply not listed.
          const info = await stat(this.locationOf(key)).catch(() => undefined);
          if (info?.isFile()) infos[i] = { key, size: info.size, lastModified: info.mtime };
        }
      }),
    );
    return infos.filter((info): info is ObjectInfo => info !== undefined);
  }

  private async walk(dirKey: string, prefix: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(this.locationOf(dirKey), { withFileTypes: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw new LakeStoreError(`cannot list ${this.locationOf(dirKey)}: ${code ?? String(error)}`, { cause: error });
    }
    for (const entry of entries) {
      const key = joinKey(dirKey, entry.name);
      if (entry.isDirectory()) {
        // Descend only where keys below can still start with the prefix.
        if (`${key}/`.startsWith(prefix) || prefix.startsWith(`${key}/`)) await this.walk(key, prefix, out);
      } else if (entry.isFile() && key.startsWith(prefix)) {
        out.push(key);
      }
    }
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const file = this.localPathOf(key);
    try {
      const info = await stat(file);
      return info.isFile() ? { key, size: info.size, lastModified: info.mtime } : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw this.translate(error, file);
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.localPathOf(key), { force: true });
  }

  async close(): Promise<void> {}

  private translate(error: unknown, file: string): Error {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return new ObjectNotFoundError(file);
    return new LakeStoreError(`${file}: ${code ?? (error as Error).message}`, { cause: error });
  }
}

/** mkdir -p, then fsync the parent of every folder it created, so the new names are durable. */
export async function ensureDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true });
  if (first === undefined) return;
  // `first` is the topmost folder created; fsync its parent and every created folder's parent below it.
  const created: string[] = [];
  for (let current = dir; ; current = path.dirname(current)) {
    created.push(current);
    if (current === first || path.dirname(current) === current) break;
  }
  for (const folder of created.reverse()) await fsyncDir(path.dirname(folder));
}
