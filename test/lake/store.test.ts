// The lake's storage interface, one contract run against every backend on a real server or folder:
// a local folder, Azurite (Azure Blob emulator, enforces create-if-absent) and s3rver (an S3 server
// that ignores If-None-Match: create-if-absent is expected NOT to be enforced there).

import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeStoreError, ObjectExistsError, ObjectNotFoundError } from '../../src/lake/store/errors.ts';
import type { LakeStore } from '../../src/lake/store/lake-store.ts';
import { lakeStoreConfigFromEnv } from '../../src/config/lake-store.ts';
import { LocalFileCache } from '../../src/lake/store/local-file-cache.ts';
import { openLakeStore } from '../../src/lake/store/open-store.ts';
import { LazyTempDir } from '../../src/lake/store/process-temp-dir.ts';
import { azuriteConnectionString, startAzurite, startS3rver, type StoreServer } from '../helpers/object-stores.ts';
import { freePort } from '../helpers/ports.ts';

let scratch: string;
let azurite: StoreServer;
let s3rver: StoreServer;

beforeAll(async () => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'lakets-lake-store-'));
  [azurite, s3rver] = await Promise.all([startAzurite(), startS3rver()]);
  await azurite.createBucket('lake');
  await s3rver.createBucket('lake');
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), s3rver?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
});

interface Backend {
  readonly name: string;
  readonly enforcesCreateIfAbsent: boolean;
  /** A fresh store at its own prefix, with its cache/staging under `cacheDir`. */
  open(prefix: string, cacheDir: string): LakeStore;
}

const backends: Backend[] = [
  {
    name: 'file',
    enforcesCreateIfAbsent: true,
    open: (prefix, cacheDir) => openLakeStore(lakeStoreConfigFromEnv({ LAKETS_LAKE_URL: `file://${path.join(scratch, 'files', prefix)}`, LAKETS_LAKE_CACHE_DIR: cacheDir }, scratch)),
  },
  {
    name: 'azurite',
    enforcesCreateIfAbsent: true,
    open: (prefix, cacheDir) => openLakeStore(lakeStoreConfigFromEnv({ ...azurite.env, LAKETS_LAKE_URL: `az://lake/${prefix}`, LAKETS_LAKE_CACHE_DIR: cacheDir }, scratch)),
  },
  {
    name: 's3rver',
    enforcesCreateIfAbsent: false,
    open: (prefix, cacheDir) => openLakeStore(lakeStoreConfigFromEnv({ ...s3rver.env, LAKETS_LAKE_URL: `s3://lake/${prefix}`, LAKETS_LAKE_CACHE_DIR: cacheDir }, scratch)),
  },
];

let counter = 0;
function fresh(backend: Backend): { store: LakeStore; cacheDir: string } {
  const cacheDir = path.join(scratch, 'cache', `${backend.name}-${++counter}`);
  return { store: backend.open(`t${counter}/lake`, cacheDir), cacheDir };
}

describe.each(backends)('the LakeStore contract on $name', (backend) => {
  it('writes, replaces, reads and stats whole objects; a missing one is ObjectNotFoundError', async () => {
    const { store } = fresh(backend);
    await store.write('_delta_log/_last_checkpoint', '{"version":1}');
    expect((await store.read('_delta_log/_last_checkpoint')).toString()).toBe('{"version":1}');
    await store.write('_delta_log/_last_checkpoint', new Uint8Array(Buffer.from('{"version":20}')));
    expect((await store.read('_delta_log/_last_checkpoint')).toString()).toBe('{"version":20}');
    const info = await store.stat('_delta_log/_last_checkpoint');
    expect(info).toMatchObject({ key: '_delta_log/_last_checkpoint', size: 14 });
    expect(Math.abs(info!.lastModified.getTime() - Date.now())).toBeLessThan(120_000);
    expect(await store.stat('_delta_log/nothing')).toBeUndefined();
    const missing = await store.read('_delta_log/nothing').catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ObjectNotFoundError);
    expect((missing as Error).message).toContain(store.locationOf('_delta_log/nothing'));
    await store.close();
  });

  it(`create-if-absent ${backend.enforcesCreateIfAbsent ? 'refuses a second create with ObjectExistsError and keeps the first' : 'is NOT enforced: the second create overwrites'}`, async () => {
    const { store } = fresh(backend);
    await store.createIfAbsent('_delta_log/00000000000000000000.json', 'first\n');
    const second = await store.createIfAbsent('_delta_log/00000000000000000000.json', 'second\n').then(() => 'created', (e: unknown) => e);
    if (backend.enforcesCreateIfAbsent) {
      expect(second).toBeInstanceOf(ObjectExistsError);
      expect((await store.read('_delta_log/00000000000000000000.json')).toString()).toBe('first\n');
    } else {
      expect(second).toBe('created');
      expect((await store.read('_delta_log/00000000000000000000.json')).toString()).toBe('second\n');
    }
    await store.close();
  });

  it(`${backend.enforcesCreateIfAbsent ? 'lets exactly one' : 'lets every one'} of eight concurrent creates of one key win`, async () => {
    const { store } = fresh(backend);
    const key = '_delta_log/00000000000000000007.json';
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.createIfAbsent(key, `writer ${i}\n`)));
    const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    if (backend.enforcesCreateIfAbsent) {
      expect(winners).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ObjectExistsError);
      expect((await store.read(key)).toString()).toBe(`writer ${winners[0]}\n`);
    } else {
      // Eight writers each believe they created the version: exactly what Delta must never allow.
      expect(winners).toHaveLength(8);
    }
    await store.close();
  });

  it('lists a prefix at any depth, sorted, with sizes; startAfter skips; at() scopes a sub-prefix', async () => {
    const { store } = fresh(backend);
    const keys = ['_delta_log/00000000000000000001.json', '_delta_log/00000000000000000000.json', '_delta_log/_probe/x', 'date=2024-03-01/a.parquet', 'date=2024-03-02/b.parquet', '_delta_logger'];
    for (const key of keys) await store.write(key, key);
    const log = await store.list('_delta_log/');
    expect(log.map((o) => o.key)).toEqual(['_delta_log/00000000000000000000.json', '_delta_log/00000000000000000001.json', '_delta_log/_probe/x']);
    expect(log[0]!.size).toBe('_delta_log/00000000000000000000.json'.length);
    expect((await store.list('_delta_log/', { startAfter: '_delta_log/00000000000000000000' })).map((o) => o.key)).toEqual([
      '_delta_log/00000000000000000000.json',
      '_delta_log/00000000000000000001.json',
      '_delta_log/_probe/x',
    ]);
    expect((await store.list('_delta_log/', { startAfter: '_delta_log/00000000000000000000.json' })).map((o) => o.key)).toEqual([
      '_delta_log/00000000000000000001.json',
      '_delta_log/_probe/x',
    ]);
    expect((await store.list('')).map((o) => o.key)).toEqual([...keys].sort());
    expect((await store.list('date=')).map((o) => o.key)).toEqual(['date=2024-03-01/a.parquet', 'date=2024-03-02/b.parquet']);
    expect(await store.list('nothing/')).toEqual([]);

    const day = store.at('date=2024-03-01');
    expect(day.url).toBe(`${store.url}/date=2024-03-01`);
    expect((await day.list('')).map((o) => o.key)).toEqual(['a.parquet']);
    expect((await day.read('a.parquet')).toString()).toBe('date=2024-03-01/a.parquet');
    await store.close();
  });

  it('publishes a staged local file as an object, and discarding leaves no object and no temp file', async () => {
    const { store, cacheDir } = fresh(backend);
    const staged = await store.stage('date=2024-03-01/part-1.parquet');
    writeFileSync(staged.localPath, Buffer.alloc(300_000, 7));
    const info = await staged.publish();
    expect(info).toMatchObject({ key: 'date=2024-03-01/part-1.parquet', size: 300_000 });
    expect(existsSync(staged.localPath)).toBe(false);
    expect((await store.read('date=2024-03-01/part-1.parquet')).equals(Buffer.alloc(300_000, 7))).toBe(true);

    const dropped = await store.stage('date=2024-03-01/part-2.parquet');
    writeFileSync(dropped.localPath, 'never published');
    await dropped.discard();
    expect(existsSync(dropped.localPath)).toBe(false);
    expect(await store.stat('date=2024-03-01/part-2.parquet')).toBeUndefined();
    expect((await store.list('date=2024-03-01/')).map((o) => o.key)).toEqual(['date=2024-03-01/part-1.parquet']);

    const local = path.join(scratch, `download-${backend.name}-${counter}`);
    expect(await store.download('date=2024-03-01/part-1.parquet', local)).toMatchObject({ size: 300_000 });
    expect(readFileSync(local).length).toBe(300_000);
    await expect(store.download('date=2024-03-01/none.parquet', local)).rejects.toBeInstanceOf(ObjectNotFoundError);
    await store.close();
    // A remote store keeps nothing on this machine once closed.
    if (store.localRoot === undefined) expect(existsSync(cacheDir) ? readdirSync(cacheDir) : []).toEqual([]);
  });

  it('deletes objects, absent ones without error, and refuses keys that could escape the root', async () => {
    const { store } = fresh(backend);
    await store.write('a/b', 'x');
    await store.delete('a/b');
    await store.delete('a/b');
    expect(await store.stat('a/b')).toBeUndefined();
    for (const bad of ['../escape', 'a/../../b', '/abs', 'a//b', '', 'a/./b']) {
      await expect(store.write(bad, 'x'), bad).rejects.toBeInstanceOf(LakeStoreError);
    }
    await store.close();
  });
});

describe('remote stores', () => {
  it('count an existing object with the very same bytes as created (a retried request that had landed)', async () => {
    const store = openLakeStore(lakeStoreConfigFromEnv({ ...azurite.env, LAKETS_LAKE_URL: 'az://lake/retry' }, scratch));
    await store.createIfAbsent('_delta_log/00000000000000000000.json', 'commit with txnId 1\n');
    await store.createIfAbsent('_delta_log/00000000000000000000.json', 'commit with txnId 1\n');
    await expect(store.createIfAbsent('_delta_log/00000000000000000000.json', 'commit with txnId 2\n')).rejects.toBeInstanceOf(ObjectExistsError);
    await store.close();
  });

  it('fail with a clear LakeStoreError when the container or bucket is missing or the server is down', async () => {
    const noContainer = openLakeStore(lakeStoreConfigFromEnv({ ...azurite.env, LAKETS_LAKE_URL: 'az://absent/x' }, scratch));
    await expect(noContainer.write('k', 'v')).rejects.toThrow(/write az:\/\/absent\/x\/k failed: the container does not exist/);
    await noContainer.close();

    const noBucket = openLakeStore(lakeStoreConfigFromEnv({ ...s3rver.env, LAKETS_LAKE_URL: 's3://absent/x' }, scratch));
    await expect(noBucket.write('k', 'v')).rejects.toThrow(/write s3:\/\/absent\/x\/k failed: the bucket does not exist/);
    await noBucket.close();

    const deadPort = await freePort();
    const down = openLakeStore(
      lakeStoreConfigFromEnv({ AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(deadPort), LAKETS_LAKE_URL: 'az://lake/x' }, scratch),
    );
    const error = await down.read('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LakeStoreError);
    expect((error as Error).message).toMatch(/^read az:\/\/lake\/x\/k failed: /);
    expect((error as Error).message).not.toContain('AccountKey');
    await down.close();
  });
});

describe('the download cache', () => {
  it('shares one copy per object, checks its size, and evicts idle files beyond its bound but never held ones', async () => {
    const store = openLakeStore(lakeStoreConfigFromEnv({ ...azurite.env, LAKETS_LAKE_URL: 'az://lake/cache' }, scratch));
    for (const name of ['a', 'b', 'c']) await store.write(`d/${name}.parquet`, Buffer.alloc(1000, name.charCodeAt(0)));
    const dir = new LazyTempDir(path.join(scratch, 'cache-test'), 'lake-cache');
    const cache = new LocalFileCache(store, dir, { maxBytes: 2500 });

    const [first, second] = await Promise.all([
      cache.acquire([{ key: 'd/a.parquet', size: 1000 }]),
      cache.acquire([{ key: 'd/a.parquet', size: 1000 }, { key: 'd/b.parquet', size: 1000 }]),
    ]);
    expect(first.pathOf('d/a.parquet')).toBe(second.pathOf('d/a.parquet'));
    expect(readFileSync(second.pathOf('d/b.parquet'))[0]).toBe('b'.charCodeAt(0));
    const held = first.pathOf('d/a.parquet');
    second.release();
    // Over the bound with c; a is still held by `first`, so b (idle, older than c) goes.
    const third = await cache.acquire([{ key: 'd/c.parquet', size: 1000 }]);
    third.release();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(cache.size).toBeLessThanOrEqual(2500);
    expect(existsSync(held)).toBe(true);
    first.release();

    await expect(cache.acquire([{ key: 'd/a.parquet', size: 999 }])).rejects.toThrow(/has 1000 bytes, the log records 999/);
    await expect(cache.acquire([{ key: 'd/none.parquet' }])).rejects.toBeInstanceOf(ObjectNotFoundError);
    await cache.close();
    expect(readdirSync(path.join(scratch, 'cache-test'))).toEqual([]);
    await store.close();
  });
});
