// The put-if-absent probe: the sync runs it before trusting a store with Delta commits. Against real
// servers: Azurite and a local folder enforce create-if-absent; s3rver silently overwrites, and the
// probe must say so (the sync then refuses the store and nothing is ever dropped).

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LakeStoreError } from '../../src/lake/store/errors.ts';
import { lakeStoreConfigFromEnv } from '../../src/config/lake-store.ts';
import { openLakeStore } from '../../src/lake/store/open-store.ts';
import { assertPutIfAbsent, probePutIfAbsent, PutIfAbsentNotEnforcedError, PROBE_PREFIX } from '../../src/lake/store/put-if-absent-probe.ts';
import { azuriteConnectionString, startAzurite, startS3rver, type StoreServer } from '../helpers/object-stores.ts';
import { freePort } from '../helpers/ports.ts';

let scratch: string;
let azurite: StoreServer;
let s3rver: StoreServer;

beforeAll(async () => {
  scratch = mkdtempSync(path.join(os.tmpdir(), 'lakets-put-if-absent-probe-'));
  [azurite, s3rver] = await Promise.all([startAzurite(), startS3rver()]);
  await azurite.createBucket('lake');
  await s3rver.createBucket('lake');
});
afterAll(async () => {
  await Promise.all([azurite?.stop(), s3rver?.stop()]);
  rmSync(scratch, { recursive: true, force: true });
});

describe('the put-if-absent probe', () => {
  it('finds create-if-absent enforced on Azurite and leaves nothing behind', async () => {
    const store = openLakeStore(lakeStoreConfigFromEnv({ ...azurite.env, LAKETS_LAKE_URL: 'az://lake/prod' }, scratch)).at('stock_ticks');
    const verdict = await probePutIfAbsent(store);
    expect(verdict.enforced).toBe(true);
    expect(verdict.location).toMatch(/^az:\/\/lake\/prod\/stock_ticks\/_delta_log\/_probe\/[0-9a-f-]{36}$/);
    expect(verdict.detail).toContain('az://lake/prod/stock_ticks enforces create-if-absent');
    expect(await store.list(PROBE_PREFIX)).toEqual([]);
    await expect(assertPutIfAbsent(store)).resolves.toMatchObject({ enforced: true });
  });

  it('finds create-if-absent enforced on a local folder', async () => {
    const store = openLakeStore(lakeStoreConfigFromEnv({}, scratch)).at('stock_ticks');
    expect((await probePutIfAbsent(store)).enforced).toBe(true);
    expect(await store.list('')).toEqual([]);
  });

  it('finds that s3rver does NOT enforce it, says why, and assertPutIfAbsent refuses the store', async () => {
    const store = openLakeStore(lakeStoreConfigFromEnv({ ...s3rver.env, LAKETS_LAKE_URL: 's3://lake/prod' }, scratch)).at('stock_ticks');
    const verdict = await probePutIfAbsent(store);
    expect(verdict.enforced).toBe(false);
    expect(verdict.detail).toMatch(
      /^s3:\/\/lake\/prod\/stock_ticks does not enforce create-if-absent: it accepted a second create of an existing object and overwrote it\. Delta commits on it would not be atomic/,
    );
    expect(await store.list(PROBE_PREFIX)).toEqual([]);
    const refused = await assertPutIfAbsent(store).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PutIfAbsentNotEnforcedError);
    expect((refused as PutIfAbsentNotEnforcedError).verdict.enforced).toBe(false);
  });

  it('gives no verdict when the store cannot be reached or the container is missing: it fails', async () => {
    const deadPort = await freePort();
    const down = openLakeStore(lakeStoreConfigFromEnv({ AZURE_STORAGE_CONNECTION_STRING: azuriteConnectionString(deadPort), LAKETS_LAKE_URL: 'az://lake' }, scratch));
    await expect(probePutIfAbsent(down)).rejects.toBeInstanceOf(LakeStoreError);
    const missing = openLakeStore(lakeStoreConfigFromEnv({ ...azurite.env, LAKETS_LAKE_URL: 'az://nothing-here' }, scratch));
    await expect(probePutIfAbsent(missing)).rejects.toThrow(/the container does not exist/);
  });
});
