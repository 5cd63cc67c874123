// Where the lake lives, from LAKETS_LAKE_URL and the standard variables of each cloud:
//
//   file:///abs/path (or a plain absolute path)   default: LAKETS_DATA_DIR/lake
//   s3://bucket/prefix     AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), AWS_REGION (or AWS_DEFAULT_REGION;
//                          default us-east-1), AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN;
//                          else the SDK's default chain: profile, instance role), AWS_S3_FORCE_PATH_STYLE
//   az://container/prefix  AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME and
//                          AZURE_STORAGE_ACCOUNT_KEY (AZURE_STORAGE_ACCOUNT / AZURE_STORAGE_KEY, the az CLI's
//                          names, also work), AZURE_STORAGE_ENDPOINT for a non-public endpoint;
//                          abfss://container@account.dfs.core.windows.net/prefix names the same place
//
// The tables are `<url>/<table>`. The result holds credentials: log `describeLakeStoreConfig()`, never it.
// gs:// is refused: no GCS emulator runs here to test a backend against, and an untested commit
// protocol is not one to ship.

import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export type LakeStoreConfig = FileLakeConfig | S3LakeConfig | AzureLakeConfig;

/** LAKETS_LAKE_URL or the store's credentials are missing or malformed (src/config.ts reports it as a ConfigError). */
export class LakeStoreConfigError extends Error {
  override readonly name: string = 'LakeStoreConfigError';
}

interface CommonLakeConfig {
  /** The lake's root URL without credentials (for logs, the API and error messages). */
  readonly url: string;
  /** Where remote lakes keep staged uploads and the download cache (a per-process folder, removed on close). */
  readonly cacheDir: string;
  /** Most bytes of downloaded data files kept for reuse. */
  readonly cacheMaxBytes: number;
}

export interface FileLakeConfig extends CommonLakeConfig {
  readonly kind: 'file';
  readonly root: string;
}

export interface S3LakeConfig extends CommonLakeConfig {
  readonly kind: 's3';
  readonly bucket: string;
  readonly prefix: string;
  readonly region: string;
  readonly endpoint?: string;
  readonly forcePathStyle: boolean;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string; readonly sessionToken?: string };
}

export interface AzureLakeConfig extends CommonLakeConfig {
  readonly kind: 'az';
  readonly container: string;
  readonly prefix: string;
  readonly connectionString?: string;
  readonly accountName?: string;
  readonly accountKey?: string;
  readonly endpoint?: string;
}

export type LakeEnv = Readonly<Record<string, string | undefined>>;

export const DEFAULT_LAKE_CACHE_MB = 512;

/** S3 bucket names: 3–63 of lowercase letters, digits, '.', '-'. */
const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
/** Azure container names: 3–63 of lowercase letters, digits, single '-'. */
const AZ_CONTAINER = /^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$/;

/**
 * Reads the lake's location and credentials from `env` (the environment as src/config.ts reads it, or a test's own object).
 * `dataDir` is LAKETS_DATA_DIR resolved: the default lake is `<dataDir>/lake`.
 * Throws LakeStoreConfigError with a message naming the variable to fix.
 */
export function lakeStoreConfigFromEnv(env: LakeEnv, dataDir: string): LakeStoreConfig {
  const cacheDir = nonEmpty(env['LAKETS_LAKE_CACHE_DIR']) ?? path.join(path.resolve(dataDir), 'cache');
  const cacheMb = nonEmpty(env['LAKETS_LAKE_CACHE_MB']);
  let cacheMaxBytes = DEFAULT_LAKE_CACHE_MB * 1024 * 1024;
  if (cacheMb !== undefined) {
    if (!/^\d{1,7}$/.test(cacheMb) || Number(cacheMb) < 16) throw new LakeStoreConfigError(`LAKETS_LAKE_CACHE_MB must be a whole number of MiB, at least 16 (got ${JSON.stringify(cacheMb)})`);
    cacheMaxBytes = Number(cacheMb) * 1024 * 1024;
  }
  const common = { cacheDir, cacheMaxBytes };

  const raw = nonEmpty(env['LAKETS_LAKE_URL']);
  if (raw === undefined) {
    const root = path.join(path.resolve(dataDir), 'lake');
    return { kind: 'file', root, url: fileUrl(root), ...common };
  }
  if (path.isAbsolute(raw)) return { kind: 'file', root: path.resolve(raw), url: fileUrl(path.resolve(raw)), ...common };

  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(raw)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    throw new LakeStoreConfigError(`LAKETS_LAKE_URL must be file:///absolute/path, s3://bucket/prefix or az://container/prefix (got a relative path or no scheme)`);
  }
  // The URL parser would quietly resolve '.' and '..' segments: a typo must not move the lake.
  if (/^[^:]+:\/\/[^/]*(\/.*)?\/\.{1,2}(\/|$)/.test(raw)) throw new LakeStoreConfigError(`LAKETS_LAKE_URL: the path must not contain '.' or '..' segments`);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new LakeStoreConfigError(`LAKETS_LAKE_URL is not a valid URL`);
  }
  // (abfss:// names its container where a user name would be.)
  const userIsContainer = scheme === 'abfs' || scheme === 'abfss';
  if ((url.username !== '' && !userIsContainer) || url.password !== '' || url.search !== '' || url.hash !== '') {
    throw new LakeStoreConfigError(`LAKETS_LAKE_URL must not carry credentials, a query or a fragment: put credentials in the store's own variables`);
  }

  switch (scheme) {
    case 'file': {
      if (url.host !== '' && url.host !== 'localhost') throw new LakeStoreConfigError(`LAKETS_LAKE_URL file:// must name a local path (file:///abs/path)`);
      const root = path.resolve(fileURLToPath(url));
      return { kind: 'file', root, url: fileUrl(root), ...common };
    }
    case 's3':
    case 's3a':
      return s3Config(url, env, common);
    case 'az':
    case 'azure':
    case 'abfs':
    case 'abfss':
      return azureConfig(scheme, url, env, common);
    case 'gs':
    case 'gcs':
      throw new LakeStoreConfigError(`LAKETS_LAKE_URL: Google Cloud Storage (gs://) is not supported yet; use s3://, az:// or file://`);
    default:
      throw new LakeStoreConfigError(`LAKETS_LAKE_URL: unknown scheme ${scheme}:// (use file://, s3:// or az://)`);
  }
}

/** The config as one line without secrets, for logs and errors. */
export function describeLakeStoreConfig(config: LakeStoreConfig): string {
  switch (config.kind) {
    case 'file':
      return config.url;
    case 's3':
      return `${config.url} (region ${config.region}${config.endpoint ? `, endpoint ${config.endpoint}` : ''}${config.forcePathStyle ? ', path-style' : ''})`;
    case 'az':
      return `${config.url} (${config.connectionString !== undefined ? 'connection string' : `account ${config.accountName}`})`;
  }
}

function s3Config(url: URL, env: LakeEnv, common: Pick<CommonLakeConfig, 'cacheDir' | 'cacheMaxBytes'>): S3LakeConfig {
  const bucket = url.hostname;
  if (!S3_BUCKET.test(bucket)) throw new LakeStoreConfigError(`LAKETS_LAKE_URL: ${JSON.stringify(bucket)} is not a valid S3 bucket name`);
  const prefix = cleanPrefix(url.pathname);
  const endpoint = nonEmpty(env['AWS_ENDPOINT_URL_S3']) ?? nonEmpty(env['AWS_ENDPOINT_URL']);
  if (endpoint !== undefined && !/^https?:\/\/[^/\s]+/i.test(endpoint)) {
    throw new LakeStoreConfigError(`AWS_ENDPOINT_URL must be an http(s):// URL`);
  }
  const accessKeyId = nonEmpty(env['AWS_ACCESS_KEY_ID']);
  const secretAccessKey = nonEmpty(env['AWS_SECRET_ACCESS_KEY']);
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new LakeStoreConfigError(`set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (then the AWS default credential chain is used)`);
  }
  const sessionToken = nonEmpty(env['AWS_SESSION_TOKEN']);
  const forcePathStyle = booleanVar(env, 'AWS_S3_FORCE_PATH_STYLE');
  return {
    kind: 's3',
    url: `s3://${bucket}${prefix === '' ? '' : `/${prefix}`}`,
    bucket,
    prefix,
    region: nonEmpty(env['AWS_REGION']) ?? nonEmpty(env['AWS_DEFAULT_REGION']) ?? 'us-east-1',
    ...(endpoint === undefined ? {} : { endpoint }),
    forcePathStyle,
    ...(accessKeyId !== undefined && secretAccessKey !== undefined
      ? { credentials: { accessKeyId, secretAccessKey, ...(sessionToken === undefined ? {} : { sessionToken }) } }
      : {}),
    ...common,
  };
}

function azureConfig(scheme: string, url: URL, env: LakeEnv, common: Pick<CommonLakeConfig, 'cacheDir' | 'cacheMaxBytes'>): AzureLakeConfig {
  let container: string;
  let accountFromUrl: string | undefined;
  if (scheme === 'abfs' || scheme === 'abfss') {
    // abfss://container@account.dfs.core.windows.net/prefix, as Spark and Databricks name it.
    const match = /^([^@]+)@([a-z0-9]{3,24})\.dfs\.core\.windows\.net$/.exec(`${decodeURIComponent(url.username)}@${url.hostname}`);
    container = match?.[1] ?? '';
    accountFromUrl = match?.[2];
    if (accountFromUrl === undefined) throw new LakeStoreConfigError(`LAKETS_LAKE_URL: abfss:// must be abfss://container@account.dfs.core.windows.net/prefix`);
  } else {
    container = url.hostname;
  }
  if (!AZ_CONTAINER.test(container)) throw new LakeStoreConfigError(`LAKETS_LAKE_URL: ${JSON.stringify(container)} is not a valid Azure container name`);
  const prefix = cleanPrefix(url.pathname);
  const connectionString = nonEmpty(env['AZURE_STORAGE_CONNECTION_STRING']);
  const accountName = nonEmpty(env['AZURE_STORAGE_ACCOUNT_NAME']) ?? nonEmpty(env['AZURE_STORAGE_ACCOUNT']) ?? accountFromUrl;
  const accountKey = nonEmpty(env['AZURE_STORAGE_ACCOUNT_KEY']) ?? nonEmpty(env['AZURE_STORAGE_KEY']);
  const endpoint = nonEmpty(env['AZURE_STORAGE_ENDPOINT']);
  const base = { kind: 'az' as const, url: `az://${container}${prefix === '' ? '' : `/${prefix}`}`, container, prefix, ...common };
  if (connectionString !== undefined) return { ...base, connectionString };
  if (accountName === undefined || accountKey === undefined) {
    throw new LakeStoreConfigError(
      `an az:// lake needs AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY`,
    );
  }
  if (endpoint !== undefined && !/^https?:\/\/[^/\s]+/i.test(endpoint)) throw new LakeStoreConfigError(`AZURE_STORAGE_ENDPOINT must be an http(s):// URL`);
  return { ...base, accountName, accountKey, ...(endpoint === undefined ? {} : { endpoint }) };
}

function cleanPrefix(pathname: string): string {
  const segments = pathname.split('/').filter((s) => s !== '');
  const decoded = segments.map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      throw new LakeStoreConfigError(`LAKETS_LAKE_URL: the path is not valid percent-encoding`);
    }
  });
  if (decoded.some((s) => s === '.' || s === '..' || s.includes('\\'))) throw new LakeStoreConfigError(`LAKETS_LAKE_URL: the path must not contain '.' or '..' segments`);
  return decoded.join('/');
}

function fileUrl(root: string): string {
  return pathToFileURL(root).href;
}

function booleanVar(env: LakeEnv, name: string): boolean {
  const value = nonEmpty(env[name])?.toLowerCase();
  if (value === undefined || value === 'false' || value === '0') return false;
  if (value === 'true' || value === '1') return true;
  throw new LakeStoreConfigError(`${name} must be true or false`);
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}
