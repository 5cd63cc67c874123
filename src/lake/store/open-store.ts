// Opens the store a LakeStoreConfig names. Why the official SDKs (@azure/storage-blob,
// @aws-sdk/client-s3) and not Apache OpenDAL's Node binding, which would cover every cloud with one
// library: its only release on the npm registry (0.49.10) ships a native binary built against glibc
// 2.38, which does not load on Debian 12 (glibc 2.36) — our development machines and CI. The SDKs are
// plain JavaScript, maintained by the clouds themselves, and both expose the conditional create
// (If-None-Match: *) that Delta commits rest on.

import { azureBlobObjects } from './azure-objects.ts';
import { FileLakeStore } from './file-store.ts';
import type { LakeStore } from './lake-store.ts';
import type { LakeStoreConfig } from '../../config/lake-store.ts';
import { LazyTempDir } from './process-temp-dir.ts';
import { RemoteLakeStore } from './remote-store.ts';
import { s3Objects } from './s3-objects.ts';

/** The store at the lake's root; `store.at('<table>')` is a table's. Close it when done. */
export function openLakeStore(config: LakeStoreConfig): LakeStore {
  switch (config.kind) {
    case 'file':
      return new FileLakeStore(config.root);
    case 'az': {
      const objects = azureBlobObjects({
        container: config.container,
        ...(config.connectionString === undefined ? {} : { connectionString: config.connectionString }),
        ...(config.accountName === undefined ? {} : { accountName: config.accountName }),
        ...(config.accountKey === undefined ? {} : { accountKey: config.accountKey }),
        ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
      });
      return new RemoteLakeStore(objects, config.prefix, new LazyTempDir(config.cacheDir, 'lake-staging'));
    }
    case 's3': {
      const objects = s3Objects({
        bucket: config.bucket,
        region: config.region,
        ...(config.endpoint === undefined ? {} : { endpoint: config.endpoint }),
        forcePathStyle: config.forcePathStyle,
        ...(config.credentials === undefined ? {} : { credentials: config.credentials }),
      });
      return new RemoteLakeStore(objects, config.prefix, new LazyTempDir(config.cacheDir, 'lake-staging'));
    }
  }
}
