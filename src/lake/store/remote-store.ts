// What the remote stores (Azure Blob, S3) share: keys under a prefix of a container or bucket, staged
// uploads through a local temp folder, and the read-back that settles an ambiguous create-if-absent.

import { rm, stat } from 'node:fs/promises';
import { ObjectExistsError } from './errors.ts';
import { assertKey, assertPrefix, joinKey, type CreateOptions, type LakeStore, type LakeStoreKind, type ListOptions, type ObjectInfo, type StagedObject } from './lake-store.ts';
import { LazyTempDir } from './process-temp-dir.ts';

/** The objects of a remote store, addressed by full names in its container or bucket. */
export interface RemoteObjects {
  readonly kind: Exclude<LakeStoreKind, 'file'>;
  /** `az://container` or `s3://bucket`. */
  readonly baseUrl: string;
  read(name: string, location: string): Promise<Buffer>;
  write(name: string, data: Uint8Array, location: string): Promise<void>;
  /** Throws ObjectExistsError when the service refuses because the object exists. */
  createIfAbsent(name: string, data: Uint8Array, location: string): Promise<void>;
  upload(name: string, localPath: string, size: number, location: string): Promise<Date | undefined>;
  download(name: string, localPath: string, location: string): Promise<{ size: number; lastModified: Date }>;
  /** Objects whose names start with `prefix`, in name order; names greater than `startAfter` only. */
  list(prefix: string, startAfter: string | undefined, location: string): Promise<{ name: string; size: number; lastModified: Date }[]>;
  stat(name: string, location: string): Promise<{ size: number; lastModified: Date } | undefined>;
  delete(name: string, location: string): Promise<void>;
  close(): Promise<void>;
}

export class RemoteLakeStore implements LakeStore {
  readonly localRoot = undefined;
  readonly url: string;

  /**
   * @param prefix the root of this store inside the container or bucket ('' for its top).
   * @param staging where staged uploads are written (shared by the stores `at()` derives).
   */
  constructor(
    private readonly objects: RemoteObjects,
    private readonly prefix: string,
    private readonly staging: LazyTempDir,
    private readonly owner = true,
  ) {
    this.url = prefix === '' ? objects.baseUrl : `${objects.baseUrl}/${prefix}`;
  }

  get kind(): Exclude<LakeStoreKind, 'file'> {
    return this.objects.kind;
  }

  at(prefix: string): RemoteLakeStore {
    assertPrefix(prefix);
    const clean = prefix.replace(/\/+$/, '');
    return new RemoteLakeStore(this.objects, joinKey(this.prefix, clean), this.staging, false);
  }

  locationOf(key: string): string {
    return key === '' ? this.url : `${this.url}/${key}`;
  }

  localPathOf(): undefined {
    return undefined;
  }

  private name(key: string): string {
    assertKey(key);
    return joinKey(this.prefix, key);
  }

  async read(key: string): Promise<Buffer> {
    return this.objects.read(this.name(key), this.locationOf(key));
  }

  async write(key: string, data: string | Uint8Array): Promise<void> {
    return this.objects.write(this.name(key), bytes(data), this.locationOf(key));
  }

  async createIfAbsent(key: string, data: string | Uint8Array, options: CreateOptions = {}): Promise<void> {
    const body = bytes(data);
    options.beforePublish?.();
    try {
      await this.objects.createIfAbsent(this.name(key), body, this.locationOf(key));
    } catch (error) {
      if (!(error instanceof ObjectExistsError)) throw error;
      // The SDKs retry a request whose answer was lost; if the first attempt created the object, the
      // retry is refused although the object is ours. Our commits hold a random id, so identical
      // bytes mean it is this write that landed: count it as created.
      const existing = await this.read(key).catch(() => undefined);
      if (existing !== undefined && Buffer.compare(existing, body) === 0) return;
      throw error;
    }
  }

  async stage(key: string): Promise<StagedObject> {
    const name = this.name(key);
    const localPath = await this.staging.file(key);
    return {
      localPath,
      publish: async () => {
        try {
          const { size } = await stat(localPath);
          const lastModified = await this.objects.upload(name, localPath, size, this.locationOf(key));
          return { key, size, lastModified: lastModified ?? new Date() };
        } finally {
          await rm(localPath, { force: true });
        }
      },
      discard: () => rm(localPath, { force: true }),
    };
  }

  async download(key: string, localPath: string): Promise<ObjectInfo> {
    const info = await this.objects.download(this.name(key), localPath, this.locationOf(key));
    return { key, ...info };
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ObjectInfo[]> {
    assertPrefix(prefix);
    const base = this.prefix === '' ? '' : `${this.prefix}/`;
    const startAfter = options.startAfter === undefined ? undefined : base + options.startAfter;
    const found = await this.objects.list(base + prefix, startAfter, this.locationOf(prefix));
    return found.map((o) => ({ key: o.name.slice(base.length), size: o.size, lastModified: o.lastModified }));
  }

  async stat(key: string): Promise<ObjectInfo | undefined> {
    const info = await this.objects.stat(this.name(key), this.locationOf(key));
    return info && { key, ...info };
  }

  async delete(key: string): Promise<void> {
    return this.objects.delete(this.name(key), this.locationOf(key));
  }

  /** Closing the store made by openLakeStore closes the client; stores made by `at()` leave it open. */
  async close(): Promise<void> {
    if (!this.owner) return;
    await this.staging.remove();
    await this.objects.close();
  }
}

function bytes(data: string | Uint8Array): Uint8Array {
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}
