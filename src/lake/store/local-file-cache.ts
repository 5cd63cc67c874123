// Local copies of a remote lake's objects, for DuckDB (which reads local files only here: its httpfs
// and azure extensions cannot be installed offline, and we never let it fetch extensions).
//
// Data files are immutable (each has a random name), so a copy stays valid as long as its key and size
// match; checkpoints may be rewritten under the same name, so callers add a tag (size and modification
// time from the listing). The cache is bounded: once its files exceed `maxBytes`, the least recently
// used ones that no reader holds are deleted. Files a reader holds are never deleted under it, so a
// single read needing more than the bound still works; the excess goes as soon as it releases them.
// Downloads run a few at a time, and concurrent readers of one object share one download.

import { rm, stat } from 'node:fs/promises';
import { LakeStoreError } from './errors.ts';
import type { LakeStore } from './lake-store.ts';
import type { LazyTempDir } from './process-temp-dir.ts';

export interface LocalFileRequest {
  readonly key: string;
  /** The size the log records: a copy of another size is refused. */
  readonly size?: number;
  /** Distinguishes versions of an object that may be replaced under the same key. */
  readonly tag?: string;
}

export interface LocalFiles {
  /** The local file of a requested key. */
  pathOf(key: string): string;
  /** Lets the cache evict the files again. Call once, when the read is done. */
  release(): void;
}

interface Entry {
  readonly id: string;
  readonly key: string;
  path: string;
  size: number;
  pins: number;
  lastUsed: number;
  ready: Promise<void>;
  failed: boolean;
}

export interface LocalFileCacheOptions {
  readonly maxBytes: number;
  /** Downloads running at once. Default 4. */
  readonly concurrency?: number;
}

export class LocalFileCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private running = 0;
  private readonly queue: Array<() => void> = [];
  private clock = 0;

  constructor(
    private readonly store: LakeStore,
    private readonly dir: LazyTempDir,
    private readonly options: LocalFileCacheOptions,
  ) {}

  /** Bytes of the files held now. */
  get size(): number {
    return this.bytes;
  }

  /** Downloads what is missing and pins every requested file until `release()`. */
  async acquire(requests: readonly LocalFileRequest[]): Promise<LocalFiles> {
    const pinned: Entry[] = [];
    const byKey = new Map<string, Entry>();
    for (const request of requests) {
      if (byKey.has(request.key)) continue;
      const entry = this.entryFor(request);
      entry.pins++;
      entry.lastUsed = ++this.clock;
      pinned.push(entry);
      byKey.set(request.key, entry);
    }
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      for (const entry of pinned) entry.pins--;
      void this.evict();
    };
    try {
      await Promise.all(pinned.map((entry) => entry.ready));
    } catch (error) {
      release();
      throw error;
    }
    void this.evict();
    return {
      pathOf: (key) => {
        const entry = byKey.get(key);
        if (entry === undefined) throw new Error(`${key} was not requested from the cache`);
        return entry.path;
      },
      release,
    };
  }

  /** Deletes every cached file and the cache's folder. */
  async close(): Promise<void> {
    this.entries.clear();
    this.bytes = 0;
    await this.dir.remove();
  }

  private entryFor(request: LocalFileRequest): Entry {
    const id = `${request.key}\u0000${request.size ?? ''}\u0000${request.tag ?? ''}`;
    const existing = this.entries.get(id);
    if (existing && !existing.failed) return existing;
    const entry: Entry = { id, key: request.key, path: '', size: 0, pins: 0, lastUsed: 0, ready: Promise.resolve(), failed: false };
    entry.ready = this.download(entry, request).catch(async (error: unknown) => {
      entry.failed = true;
      if (this.entries.get(id) === entry) this.entries.delete(id);
      if (entry.path !== '') await rm(entry.path, { force: true }).catch(() => undefined);
      throw error;
    });
    this.entries.set(id, entry);
    return entry;
  }

  private async download(entry: Entry, request: LocalFileRequest): Promise<void> {
    await this.turn();
    try {
      entry.path = await this.dir.file(request.key);
      await this.store.download(request.key, entry.path);
      const { size } = await stat(entry.path);
      if (request.size !== undefined && size !== request.size) {
        throw new LakeStoreError(`${this.store.locationOf(request.key)} has ${size} bytes, the log records ${request.size}`);
      }
      entry.size = size;
      this.bytes += size;
    } finally {
      this.running--;
      this.queue.shift()?.();
    }
  }

  private turn(): Promise<void> {
    if (this.running < (this.options.concurrency ?? 4)) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.queue.push(() => {
        this.running++;
        resolve();
      }),
    );
  }

  private async evict(): Promise<void> {
    if (this.bytes <= this.options.maxBytes) return;
    const idle = [...this.entries.values()].filter((e) => e.pins === 0 && !e.failed && e.size > 0).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const entry of idle) {
      if (this.bytes <= this.options.maxBytes) break;
      // Re-checked after every await: a reader may have taken the file meanwhile.
      if (entry.pins > 0 || this.entries.get(entry.id) !== entry) continue;
      this.entries.delete(entry.id);
      this.bytes -= entry.size;
      await rm(entry.path, { force: true }).catch(() => undefined);
    }
  }
}
