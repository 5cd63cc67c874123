// Azure Blob Storage (and ADLS Gen2, which serves the same Blob API) through the official SDK,
// @azure/storage-blob. Create-if-absent is an upload with `If-None-Match: *`: the service refuses it
// with 409 BlobAlreadyExists (or 412 ConditionNotMet) when the blob exists, atomically. Azurite, the
// emulator the tests run, enforces it the same way.

import { BlobServiceClient, isRestError, StorageSharedKeyCredential, type ContainerClient } from '@azure/storage-blob';
import { LakeStoreError, ObjectExistsError, ObjectNotFoundError } from './errors.ts';
import type { RemoteObjects } from './remote-store.ts';

export interface AzureBlobOptions {
  readonly container: string;
  /** An Azure Storage connection string (account key, SAS, or Azurite's with BlobEndpoint=…). */
  readonly connectionString?: string;
  readonly accountName?: string;
  readonly accountKey?: string;
  /** The Blob endpoint, e.g. https://<account>.blob.core.windows.net (the default for account + key). */
  readonly endpoint?: string;
}

/** Bounded retries: an unreachable store fails a commit within seconds, and the sync retries it as a whole. */
const RETRY = { maxTries: 4, retryDelayInMs: 200, maxRetryDelayInMs: 2_000, tryTimeoutInMs: 60_000 } as const;
/** Listing page size (the service's maximum). */
const PAGE = 5_000;

export function azureBlobObjects(options: AzureBlobOptions): RemoteObjects {
  let service: BlobServiceClient;
  if (options.connectionString !== undefined) {
    service = BlobServiceClient.fromConnectionString(options.connectionString, { retryOptions: RETRY });
  } else if (options.accountName !== undefined && options.accountKey !== undefined) {
    const endpoint = options.endpoint ?? `https://${options.accountName}.blob.core.windows.net`;
    service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(options.accountName, options.accountKey), { retryOptions: RETRY });
  } else {
    throw new LakeStoreError('an az:// lake needs AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY');
  }
  return new AzureBlobObjects(service.getContainerClient(options.container), `az://${options.container}`);
}

class AzureBlobObjects implements RemoteObjects {
  readonly kind = 'az' as const;

  constructor(
    private readonly container: ContainerClient,
    readonly baseUrl: string,
  ) {}

  async read(name: string, location: string): Promise<Buffer> {
    try {
      return await this.container.getBlobClient(name).downloadToBuffer();
    } catch (error) {
      throw translate(error, 'read', location);
    }
  }

  async write(name: string, data: Uint8Array, location: string): Promise<void> {
    try {
      await this.container.getBlockBlobClient(name).upload(data, data.byteLength);
    } catch (error) {
      throw translate(error, 'write', location);
    }
  }

  async createIfAbsent(name: string, data: Uint8Array, location: string): Promise<void> {
    try {
      await this.container.getBlockBlobClient(name).upload(data, data.byteLength, { conditions: { ifNoneMatch: '*' } });
    } catch (error) {
      if (isRestError(error) && (error.statusCode === 409 || error.statusCode === 412)) throw new ObjectExistsError(location);
      throw translate(error, 'create', location);
    }
  }

  async upload(name: string, localPath: string, _size: number, location: string): Promise<Date | undefined> {
    try {
      // One Put Blob up to 256 MiB, above that staged blocks and one Put Block List: either way the
      // blob appears whole or not at all.
      const response = await this.container.getBlockBlobClient(name).uploadFile(localPath);
      return response.lastModified;
    } catch (error) {
      throw translate(error, 'upload', location);
    }
  }

  async download(name: string, localPath: string, location: string): Promise<{ size: number; lastModified: Date }> {
    try {
      const response = await this.container.getBlobClient(name).downloadToFile(localPath);
      return { size: response.contentLength ?? 0, lastModified: response.lastModified ?? new Date(0) };
    } catch (error) {
      throw translate(error, 'download', location);
    }
  }

  async list(prefix: string, startAfter: string | undefined, location: string): Promise<{ name: string; size: number; lastModified: Date }[]> {
    const out: { name: string; size: number; lastModified: Date }[] = [];
    try {
      // Blob listing has no start-after; the names come in order, so skip up to it.
      for await (const page of this.container.listBlobsFlat({ prefix }).byPage({ maxPageSize: PAGE })) {
        for (const blob of page.segment.blobItems) {
          if (startAfter !== undefined && blob.name <= startAfter) continue;
          out.push({ name: blob.name, size: blob.properties.contentLength ?? 0, lastModified: blob.properties.lastModified });
        }
      }
    } catch (error) {
      throw translate(error, 'list', location);
    }
    return out;
  }

  async stat(name: string, location: string): Promise<{ size: number; lastModified: Date } | undefined> {
    try {
      const properties = await this.container.getBlobClient(name).getProperties();
      return { size: properties.contentLength ?? 0, lastModified: properties.lastModified ?? new Date(0) };
    } catch (error) {
      const translated = translate(error, 'stat', location);
      if (translated instanceof ObjectNotFoundError) return undefined;
      throw translated;
    }
  }

  async delete(name: string, location: string): Promise<void> {
    try {
      await this.container.getBlobClient(name).deleteIfExists();
    } catch (error) {
      throw translate(error, 'delete', location);
    }
  }

  async close(): Promise<void> {}
}

/**
 * The SDK's error as ours. Messages name the operation, the blob's URL and the service's error code,
 * never the SDK's own message (it can hold a request URL with a SAS token).
 */
function translate(error: unknown, operation: string, location: string): Error {
  if (!isRestError(error)) return new LakeStoreError(`${operation} ${location} failed: ${(error as Error).message}`, { cause: error });
  const code = error.code ?? String((error.details as { errorCode?: unknown } | undefined)?.errorCode ?? '');
  const status = error.statusCode;
  if (status === 404 && code === 'ContainerNotFound') {
    return new LakeStoreError(`${operation} ${location} failed: the container does not exist (create it first)`, { cause: error });
  }
  if (status === 404) return new ObjectNotFoundError(location);
  if (status === 403 || status === 401) {
    return new LakeStoreError(`${operation} ${location} failed: access denied (${code || status}); check the Azure credentials`, { cause: error });
  }
  const what = status === undefined ? code || 'no answer' : `HTTP ${status}${code ? ` ${code}` : ''}`;
  return new LakeStoreError(`${operation} ${location} failed: ${what}`, { cause: error });
}
