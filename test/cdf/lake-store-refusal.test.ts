// A store that does not enforce create-if-absent is refused: s3rver (a real S3 server, started here)
// ignores If-None-Match and overwrites, so Delta commits on it would not be atomic. The sync proves
// this with its probe before writing anything and stops, clearly and not STREAMING; the lake stays
// empty, the durability gate keeps every chunk, and the API says why in kind only.

import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../src/config.ts';
import { partitionManager } from '../../src/lifecycle/partition-manager.ts';
import { tiering } from '../../src/lifecycle/tiering.ts';
import { gql } from '../helpers/api.ts';
import { useTestContext } from '../helpers/context.ts';
import { cdfState, insertTicks, runJob, startSyncProcess } from '../helpers/lake-lifecycle.ts';
import { startS3rver, type StoreServer } from '../helpers/object-stores.ts';
import { S3Client, ListObjectsV2Command } from '@aws-sdk/client-s3';

const ctx = useTestContext('lake_refusal');
let s3: StoreServer;
let env: Record<string, string>;
let config: Config;
let client: pg.Client;

beforeAll(async () => {
  s3 = await startS3rver();
  await s3.createBucket('lake');
  const dataDir = ctx.tempDir('refusal');
  env = { ...s3.env, LAKETS_DATA_DIR: dataDir, LAKETS_LAKE_URL: 's3://lake/refused' };
  config = loadConfig(env);
  client = new pg.Client({ connectionString: ctx.db.url });
  await client.connect();
  await client.query(`SELECT lakets.add_tiered_retention_policy('stock_ticks', '1 minute', '2 minutes', 'tick_id')`);
  await insertTicks(client, new Date(Date.UTC(2026, 5, 1, 10, 0)), 20);
  await runJob(ctx.db.url, partitionManager, config);
});

afterAll(async () => {
  await client?.end();
  await s3?.stop();
});

describe('a lake store that does not enforce create-if-absent', () => {
  it('is refused by the sync before any commit: not STREAMING, the lake empty, tiering closed', async () => {
    const child = startSyncProcess(ctx.db.url, env);
    expect(await child.exited, child.output()).toBe(1);
    expect(child.output()).toMatch(/s3:\/\/lake\/refused\/stock_ticks does not enforce create-if-absent: it accepted a second create of an existing object and overwrote it/);

    const state = await cdfState(client);
    expect(state?.state).toBe('UNAVAILABLE');
    expect(String(state?.detail['error'])).toMatch(/does not enforce create-if-absent.*tiering stays closed and nothing is dropped/);
    const { rows: slots } = await client.query(`SELECT 1 FROM pg_replication_slots WHERE database = $1`, [ctx.db.name]);
    expect(slots).toEqual([]);

    // Nothing was written to the bucket: the probe cleaned up after itself, no data file, no commit.
    const s3client = new S3Client({ endpoint: env['AWS_ENDPOINT_URL'], region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: env['AWS_ACCESS_KEY_ID']!, secretAccessKey: env['AWS_SECRET_ACCESS_KEY']! } });
    try {
      const listed = await s3client.send(new ListObjectsV2Command({ Bucket: 'lake' }));
      expect(listed.Contents ?? []).toEqual([]);
    } finally {
      s3client.destroy();
    }

    // The gate defers: nothing is tiered, let alone dropped.
    const detail = await runJob(ctx.db.url, tiering, config);
    expect(detail).toMatchObject({ tiered: 0 });
    const { rows } = await client.query<{ status: string; last_gate_result: string }>(`SELECT status, last_gate_result FROM lakets.chunks WHERE row_count > 0`);
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) expect(row).toMatchObject({ status: 'active', last_gate_result: expect.stringMatching(/sync is UNAVAILABLE/) });

    // The API reports the state and the kind of failure, not the message.
    const api = await ctx.startApi({ lake: config.lake.store });
    const res = await gql(api.url, `{ lake { state error } }`);
    expect(res.data.lake).toEqual({ state: 'UNAVAILABLE', error: 'failed: the lake store does not enforce create-if-absent (details in the server log)' });
  });
});
