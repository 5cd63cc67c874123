// LAKETS_LAKE_URL and the standard AWS / Azure variables: where the lake lives and how to reach it,
// every mistake refused with a message naming what to fix and never echoing a secret.

import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { describeLakeStoreConfig, lakeStoreConfigFromEnv, LakeStoreConfigError, type LakeEnv } from '../../src/config/lake-store.ts';

const dataDir = '/var/lib/lakets-data';

function refused(env: LakeEnv): string {
  try {
    lakeStoreConfigFromEnv(env, dataDir);
  } catch (error) {
    expect(error).toBeInstanceOf(LakeStoreConfigError);
    return (error as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(env)}`);
}

describe('LAKETS_LAKE_URL', () => {
  it('defaults to LAKETS_DATA_DIR/lake on the local disk, with the cache under LAKETS_DATA_DIR/cache', () => {
    const config = lakeStoreConfigFromEnv({}, dataDir);
    expect(config).toMatchObject({ kind: 'file', root: path.join(dataDir, 'lake'), url: 'file:///var/lib/lakets-data/lake', cacheDir: path.join(dataDir, 'cache') });
    expect(config.cacheMaxBytes).toBe(512 * 1024 * 1024);
    expect(lakeStoreConfigFromEnv({ LAKETS_LAKE_URL: 'file:///srv/lake%20x/' }, dataDir)).toMatchObject({ kind: 'file', root: '/srv/lake x' });
    expect(lakeStoreConfigFromEnv({ LAKETS_LAKE_URL: '/srv/lake' }, dataDir)).toMatchObject({ kind: 'file', root: '/srv/lake' });
    expect(lakeStoreConfigFromEnv({ LAKETS_LAKE_CACHE_MB: '64', LAKETS_LAKE_CACHE_DIR: '/tmp/c' }, dataDir)).toMatchObject({ cacheMaxBytes: 64 * 1024 * 1024, cacheDir: '/tmp/c' });
  });

  it('reads s3:// with the standard AWS variables', () => {
    const config = lakeStoreConfigFromEnv(
      {
        LAKETS_LAKE_URL: 's3://my-bucket/teams/lake/',
        AWS_ENDPOINT_URL: 'http://127.0.0.1:9000',
        AWS_REGION: 'eu-west-3',
        AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
        AWS_SECRET_ACCESS_KEY: 'very-secret',
        AWS_S3_FORCE_PATH_STYLE: 'true',
      },
      dataDir,
    );
    expect(config).toMatchObject({
      kind: 's3',
      url: 's3://my-bucket/teams/lake',
      bucket: 'my-bucket',
      prefix: 'teams/lake',
      region: 'eu-west-3',
      endpoint: 'http://127.0.0.1:9000',
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'very-secret' },
    });
    expect(describeLakeStoreConfig(config)).not.toContain('very-secret');
    // Without keys: the SDK's default chain; without a region: us-east-1; AWS_ENDPOINT_URL_S3 wins.
    const plain = lakeStoreConfigFromEnv({ LAKETS_LAKE_URL: 's3://bucket', AWS_ENDPOINT_URL: 'http://a:1', AWS_ENDPOINT_URL_S3: 'http://b:2' }, dataDir);
    expect(plain).toMatchObject({ kind: 's3', prefix: '', region: 'us-east-1', endpoint: 'http://b:2', forcePathStyle: false });
    expect(plain).not.toHaveProperty('credentials');
  });

  it('reads az:// (and abfss://) with a connection string or an account and key', () => {
    expect(lakeStoreConfigFromEnv({ LAKETS_LAKE_URL: 'az://lake/prod', AZURE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true' }, dataDir)).toMatchObject({
      kind: 'az',
      url: 'az://lake/prod',
      container: 'lake',
      prefix: 'prod',
      connectionString: 'UseDevelopmentStorage=true',
    });
    const keyed = lakeStoreConfigFromEnv({ LAKETS_LAKE_URL: 'az://lake', AZURE_STORAGE_ACCOUNT_NAME: 'acct', AZURE_STORAGE_ACCOUNT_KEY: 'c2VjcmV0' }, dataDir);
    expect(keyed).toMatchObject({ kind: 'az', accountName: 'acct', accountKey: 'c2VjcmV0', prefix: '' });
    expect(describeLakeStoreConfig(keyed)).toBe('az://lake (account acct)');
    expect(lakeStoreConfigFromEnv({ LAKETS_LAKE_URL: 'az://lake', AZURE_STORAGE_ACCOUNT: 'acct2', AZURE_STORAGE_KEY: 'k' }, dataDir)).toMatchObject({ accountName: 'acct2' });
    expect(
      lakeStoreConfigFromEnv({ LAKETS_LAKE_URL: 'abfss://lake@acct3.dfs.core.windows.net/p/q', AZURE_STORAGE_ACCOUNT_KEY: 'k' }, dataDir),
    ).toMatchObject({ kind: 'az', container: 'lake', accountName: 'acct3', prefix: 'p/q', url: 'az://lake/p/q' });
  });

  it('refuses what it cannot use, saying what to fix', () => {
    expect(refused({ LAKETS_LAKE_URL: 'lake' })).toMatch(/must be file:\/\/\/absolute\/path, s3:\/\/bucket\/prefix or az:\/\/container\/prefix/);
    expect(refused({ LAKETS_LAKE_URL: 'ftp://host/x' })).toMatch(/unknown scheme ftp:\/\//);
    expect(refused({ LAKETS_LAKE_URL: 'gs://bucket/x' })).toMatch(/gs:\/\/\) is not supported/);
    expect(refused({ LAKETS_LAKE_URL: 's3://Bad_Bucket/x' })).toMatch(/not a valid S3 bucket name/);
    expect(refused({ LAKETS_LAKE_URL: 's3://bucket/../x' })).toMatch(/must not contain '\.' or '\.\.'|not a valid/);
    expect(refused({ LAKETS_LAKE_URL: 's3://user:secret@bucket/x' })).toMatch(/must not carry credentials/);
    expect(refused({ LAKETS_LAKE_URL: 's3://bucket/x', AWS_ACCESS_KEY_ID: 'only-the-id' })).toMatch(/set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
    expect(refused({ LAKETS_LAKE_URL: 's3://bucket/x', AWS_S3_FORCE_PATH_STYLE: 'maybe' })).toMatch(/AWS_S3_FORCE_PATH_STYLE must be true or false/);
    expect(refused({ LAKETS_LAKE_URL: 's3://bucket/x', AWS_ENDPOINT_URL: 'localhost:9000' })).toMatch(/AWS_ENDPOINT_URL must be an http\(s\):\/\/ URL/);
    expect(refused({ LAKETS_LAKE_URL: 'az://lake/x' })).toMatch(/needs AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY/);
    expect(refused({ LAKETS_LAKE_URL: 'az://Lake/x', AZURE_STORAGE_CONNECTION_STRING: 'x' })).toMatch(/not a valid Azure container name/);
    expect(refused({ LAKETS_LAKE_URL: 'file://otherhost/x' })).toMatch(/must name a local path/);
    expect(refused({ LAKETS_LAKE_CACHE_MB: 'lots' })).toMatch(/LAKETS_LAKE_CACHE_MB must be a whole number/);
    const secret = refused({ LAKETS_LAKE_URL: 's3://user:hunter2@bucket/x' });
    expect(secret).not.toContain('hunter2');
  });

  it('is read by loadConfig with the retention of removed files; a mistake is a ConfigError naming the variable', () => {
    const config = loadConfig({ LAKETS_DATA_DIR: dataDir, LAKETS_LAKE_URL: 'az://lake/x', AZURE_STORAGE_CONNECTION_STRING: 'UseDevelopmentStorage=true' });
    expect(config.lake.store).toMatchObject({ kind: 'az', container: 'lake', prefix: 'x', cacheDir: path.join(dataDir, 'cache') });
    expect(config.lake.retentionMs).toBe(7 * 86_400_000);
    expect(loadConfig({ LAKETS_DATA_DIR: dataDir, LAKETS_LAKE_RETENTION: '36 hours' }).lake).toMatchObject({ retentionMs: 36 * 3_600_000, store: { kind: 'file', root: path.join(dataDir, 'lake') } });
    expect(() => loadConfig({ LAKETS_LAKE_RETENTION: '10 minutes' })).toThrow(/LAKETS_LAKE_RETENTION must be at least 1 hour/);
    expect(() => loadConfig({ LAKETS_LAKE_RETENTION: 'a week' })).toThrow(ConfigError);
    expect(() => loadConfig({ LAKETS_LAKE_URL: 'gs://bucket/x' })).toThrow(ConfigError);
  });
});
