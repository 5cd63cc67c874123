// Amazon S3 and S3-compatible stores through the official SDK, @aws-sdk/client-s3. Create-if-absent
// is a PutObject with `If-None-Match: *` (conditional writes, on AWS S3 since 2024): refused with 412
// PreconditionFailed when the key exists, or 409 ConditionalRequestConflict while another conditional
// write of it is in flight. Some S3-compatible servers ignore the header and overwrite (s3rver does):
// the sync must run the put-if-absent probe before it trusts a store.

import { createReadStream, createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { LakeStoreError, ObjectExistsError, ObjectNotFoundError } from './errors.ts';
import type { RemoteObjects } from './remote-store.ts';

export interface S3Options {
  readonly bucket: string;
  readonly region: string;
  /** A custom endpoint (MinIO, Ceph, R2, a local test server); AWS's own when omitted. */
  readonly endpoint?: string;
  /** Path-style URLs (http://host/bucket/key), which most S3-compatible servers need. */
  readonly forcePathStyle?: boolean;
  /** Explicit keys; the SDK's default chain (environment, profile, instance role) when omitted. */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string };
}

/** A single PutObject takes at most 5 GiB; our files (commits, checkpoints, compacted days) stay far below. */
const MAX_SINGLE_PUT = 5 * 1024 ** 3;
/** Uploads up to this size are sent from memory, so that the SDK can retry them. */
const RETRYABLE_BODY = 64 * 1024 * 1024;

export function s3Objects(options: S3Options): RemoteObjects {
  const client = new S3Client({
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    forcePathStyle: options.forcePathStyle ?? false,
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    maxAttempts: 4,
    // Checksums only where the API demands them: the default (a CRC32 trailer on every upload, in
    // aws-chunked encoding) is refused by many S3-compatible servers. TLS and the service's own MD5
    // check of single PUTs cover integrity.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  return new S3Objects(client, options.bucket);
}

class S3Objects implements RemoteObjects {
  readonly kind = 's3' as const;
  readonly baseUrl: string;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {
    this.baseUrl = `s3://${bucket}`;
  }

  async read(name: string, location: string): Promise<Buffer> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: name }));
      return Buffer.from(await (response.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    } catch (error) {
      throw translate(error, 'read', location);
    }
  }

  async write(name: string, data: Uint8Array, location: string): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: name, Body: data, ContentLength: data.byteLength }));
    } catch (error) {
      throw translate(error, 'write', location);
    }
  }

  async createIfAbsent(name: string, data: Uint8Array, location: string): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: name, Body: data, ContentLength: data.byteLength, IfNoneMatch: '*' }),
      );
    } catch (error) {
      const status = (error as S3ServiceException).$metadata?.httpStatusCode;
      if (error instanceof S3ServiceException && (status === 412 || status === 409)) throw new ObjectExistsError(location);
      throw translate(error, 'create', location);
    }
  }

  async upload(name: string, localPath: string, size: number, location: string): Promise<Date | undefined> {
    if (size > MAX_SINGLE_PUT) throw new LakeStoreError(`upload ${location} failed: ${size} bytes is over the 5 GiB of one PutObject`);
    try {
      // A buffer can be sent again when the SDK retries; a stream cannot. Our files are small (a commit's
      // Parquet, a checkpoint); only big ones (a compacted day) are streamed, without retries.
      const body = size <= RETRYABLE_BODY ? await readFile(localPath) : createReadStream(localPath);
      await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: name, Body: body, ContentLength: size }));
      return undefined;
    } catch (error) {
      throw translate(error, 'upload', location);
    }
  }

  async download(name: string, localPath: string, location: string): Promise<{ size: number; lastModified: Date }> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: name }));
      await pipeline(response.Body as Readable, createWriteStream(localPath));
      return { size: response.ContentLength ?? 0, lastModified: response.LastModified ?? new Date(0) };
    } catch (error) {
      throw translate(error, 'download', location);
    }
  }

  async list(prefix: string, startAfter: string | undefined, location: string): Promise<{ name: string; size: number; lastModified: Date }[]> {
    const out: { name: string; size: number; lastModified: Date }[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            ...(token === undefined && startAfter !== undefined ? { StartAfter: startAfter } : {}),
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
        for (const object of page.Contents ?? []) {
          if (object.Key === undefined) continue;
          if (startAfter !== undefined && object.Key <= startAfter) continue; // servers that ignore StartAfter
          out.push({ name: object.Key, size: object.Size ?? 0, lastModified: object.LastModified ?? new Date(0) });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (error) {
      throw translate(error, 'list', location);
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async stat(name: string, location: string): Promise<{ size: number; lastModified: Date } | undefined> {
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: name }));
      return { size: response.ContentLength ?? 0, lastModified: response.LastModified ?? new Date(0) };
    } catch (error) {
      const translated = translate(error, 'stat', location);
      if (translated instanceof ObjectNotFoundError) return undefined;
      throw translated;
    }
  }

  async delete(name: string, location: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: name }));
    } catch (error) {
      throw translate(error, 'delete', location);
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/** The SDK's error as ours: the operation, the object's URL and the service's error name, never a credential. */
function translate(error: unknown, operation: string, location: string): Error {
  if (!(error instanceof S3ServiceException)) {
    const code = (error as NodeJS.ErrnoException).code;
    return new LakeStoreError(`${operation} ${location} failed: ${code ?? (error as Error).message}`, { cause: error });
  }
  const status = error.$metadata?.httpStatusCode;
  if (error.name === 'NoSuchBucket') {
    return new LakeStoreError(`${operation} ${location} failed: the bucket does not exist (create it first)`, { cause: error });
  }
  if (status === 404 || error.name === 'NoSuchKey' || error.name === 'NotFound') return new ObjectNotFoundError(location);
  if (status === 403 || status === 401) {
    return new LakeStoreError(`${operation} ${location} failed: access denied (${error.name}); check the AWS credentials`, { cause: error });
  }
  return new LakeStoreError(`${operation} ${location} failed: HTTP ${status ?? '?'} ${error.name}`, { cause: error });
}
