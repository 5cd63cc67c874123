// Real object-store servers for the lake tests, started from node_modules on their own ports and temp
// folders, stopped (and their folders removed) after:
// - Azurite, Microsoft's Azure Storage emulator: it enforces create-if-absent (If-None-Match: *);
// - s3rver, a small S3 server: it ignores If-None-Match and overwrites, which is what the
//   put-if-absent probe must catch.

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { freePort } from './ports.ts';
import { REPO_ROOT } from './processes.ts';

/** Azurite's well-known development account (public, documented; not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
export const S3RVER_KEY = 'S3RVER';

export interface StoreServer {
  readonly port: number;
  /** The variables a lake on this server needs (besides LAKETS_LAKE_URL). */
  readonly env: Record<string, string>;
  /** Creates a container (Azurite) or bucket (s3rver). */
  createBucket(name: string): Promise<void>;
  /** Output of the server so far, for failing assertions. */
  output(): string;
  stop(): Promise<void>;
}

interface Started {
  child: ChildProcess;
  dir: string;
  output: () => string;
}

async function startServer(label: string, script: string, args: (port: number, dir: string) => string[], port: number): Promise<Started> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lakets-${label}-`));
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'node_modules', script), ...args(port, dir)], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AZURITE_DISABLE_TELEMETRY: 'true' },
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const deadline = Date.now() + 30_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
      throw new Error(`${label} did not start on port ${port}: ${out}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return { child, dir, output: () => out };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function stopServer(started: Started): Promise<void> {
  const { child, dir } = started;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

export function azuriteConnectionString(port: number): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=http://127.0.0.1:${port}/${AZURITE_ACCOUNT};`;
}

/** Azurite's Blob service alone, its data in a temp folder. */
export async function startAzurite(): Promise<StoreServer> {
  const port = await freePort();
  const started = await startServer(
    'azurite',
    'azurite/dist/src/blob/main.js',
    (p, dir) => ['--blobHost', '127.0.0.1', '--blobPort', String(p), '--location', dir, '--silent', '--disableTelemetry', '--skipApiVersionCheck'],
    port,
  );
  const connectionString = azuriteConnectionString(port);
  return {
    port,
    env: { AZURE_STORAGE_CONNECTION_STRING: connectionString },
    createBucket: async (name) => {
      await BlobServiceClient.fromConnectionString(connectionString).getContainerClient(name).createIfNotExists();
    },
    output: started.output,
    stop: () => stopServer(started),
  };
}

/**
 * Copies every blob under `prefix/` of an Azurite container to the local folder `target` with the
 * Azure SDK itself (not our store): what an independent reader of the lake gets.
 */
export async function downloadBlobs(server: StoreServer, container: string, prefix: string, target: string): Promise<void> {
  const client = BlobServiceClient.fromConnectionString(server.env['AZURE_STORAGE_CONNECTION_STRING']!).getContainerClient(container);
  for await (const blob of client.listBlobsFlat({ prefix: `${prefix}/` })) {
    const local = path.join(target, ...blob.name.slice(prefix.length + 1).split('/'));
    fs.mkdirSync(path.dirname(local), { recursive: true });
    await client.getBlobClient(blob.name).downloadToFile(local);
  }
}

/** Deletes every blob under `prefix/` of an Azurite container (a lake lost, or emptied by hand). */
export async function deleteBlobs(server: StoreServer, container: string, prefix: string): Promise<number> {
  const client = BlobServiceClient.fromConnectionString(server.env['AZURE_STORAGE_CONNECTION_STRING']!).getContainerClient(container);
  let deleted = 0;
  for await (const blob of client.listBlobsFlat({ prefix: `${prefix}/` })) {
    await client.getBlobClient(blob.name).delete();
    deleted++;
  }
  return deleted;
}

/** s3rver on a temp folder, path-style. */
export async function startS3rver(): Promise<StoreServer> {
  const port = await freePort();
  const started = await startServer('s3rver', 's3rver/bin/s3rver.js', (p, dir) => ['--directory', dir, '--address', '127.0.0.1', '--port', String(p), '--silent'], port);
  const env = {
    AWS_ENDPOINT_URL: `http://127.0.0.1:${port}`,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: S3RVER_KEY,
    AWS_SECRET_ACCESS_KEY: S3RVER_KEY,
    AWS_S3_FORCE_PATH_STYLE: 'true',
  };
  return {
    port,
    env,
    createBucket: async (name) => {
      const client = new S3Client({
        endpoint: env.AWS_ENDPOINT_URL,
        region: env.AWS_REGION,
        forcePathStyle: true,
        credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY },
      });
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
    },
    output: started.output,
    stop: () => stopServer(started),
  };
}
