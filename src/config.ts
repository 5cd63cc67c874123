import path from 'node:path';
import { lakeStoreConfigFromEnv, LakeStoreConfigError, type LakeStoreConfig } from './config/lake-store.ts';

// The one reader of the environment and the one place that says where files live. Every other module
// receives a Config (or the part of it it needs); none reads process.env or joins a path under
// LAKETS_DATA_DIR itself.

/**
 * The product's tick table: created by src/sql/ as a ChronoTable with its last value cache, rollups,
 * change feed and lifecycle policy. The TypeScript side names it only through this constant.
 */
export const TICK_TABLE = 'stock_ticks';

/** Lifecycle policy of the tick ChronoTable (docs/ARCHITECTURE.md §8). */
export interface Policy {
  chunkInterval: string;
  tierAfter: string;
  dropAfter: string;
}

export interface Config {
  /** External Postgres; unset means "start the embedded one". */
  databaseUrl?: string;
  /** Direct (unpooled) connection for LISTEN and replication (docs/ARCHITECTURE.md H12). */
  databaseDirectUrl?: string;
  /** Read-only connection for the API (docs/ARCHITECTURE.md H12). */
  databaseApiUrl?: string;
  port: number;
  host: string;
  dataDir: string;
  embeddedPgPort: number;
  profile: 'demo' | 'production';
  policy: Policy;
  tickRate: number;
  /** Burst mode: a back-dated batch of this many ticks every minute (0 = off). */
  tickBurst: number;
  symbols: number;
  logLevel: string;
  maxFutureSkew: string;
  /** The change-feed sync into the lake (LAKETS_CDF_*). */
  cdf: CdfConfig;
  /** History written on the first start of a new database, in milliseconds (LAKETS_BACKFILL; 0 = off). */
  backfillMs: number;
  /** CONNECTION LIMIT of the embedded server's read-only API role. */
  apiConnectionLimit: number;
  /** Who may call the API and from which browser origins. */
  security: SecurityConfig;
  /**
   * statement_timeout of every API session, in milliseconds: no client request holds a backend
   * longer. Set on the API pool's sessions (so it holds with DATABASE_URL too) and, on the
   * embedded server, as the read-only API role's default.
   */
  apiStatementTimeoutMs: number;
  /** Where the lake lives and how long removed files stay (LAKETS_LAKE_*). */
  lake: LakeConfig;
}

/** The lake: its store (LAKETS_LAKE_URL and the store's own variables) and the retention of removed files. */
export interface LakeConfig {
  /** Where the lake lives, with its credentials and local cache (log describeLakeStoreConfig(), never this). */
  store: LakeStoreConfig;
  /**
   * LAKETS_LAKE_RETENTION: how long a data file stays in the store after a compaction removed it from
   * the table (readers of older versions, time travel), and how old an unreferenced file must be before
   * lake_vacuum deletes it (an upload whose commit is still to come is never that old).
   */
  retentionMs: number;
}

/** Default LAKETS_LAKE_RETENTION: Delta Lake's own default for removed files. */
export const DEFAULT_LAKE_RETENTION = '7 days';
/** The shortest retention accepted: far longer than any upload waits for the commit that names it. */
const MIN_LAKE_RETENTION_MS = 3_600_000;

/** The change-feed sync's batching and its test-only crash injection. */
export interface CdfConfig {
  /** Longest a change waits before the sync commits it to the lake (docs/ARCHITECTURE.md H7: ≈10 s in production). */
  batchMaxMs: number;
  /** A Delta commit at the latest when this many rows wait. */
  batchMaxRows: number;
  /** A Delta checkpoint every this many commits. */
  checkpointEvery: number;
  /** Keepalive request and lakets.cdf_state refresh period. */
  statusIntervalMs: number;
  /** Tests only: the process kills itself (SIGKILL) at this point of a commit... */
  crashAt?: CdfCrashPoint;
  /** ...once this many commits have succeeded in it. */
  crashAfterCommits: number;
}

/** Where a commit can be interrupted by crash injection, in the order a commit passes them. */
export const CDF_CRASH_POINTS = ['parquet-written', 'commit-temp-written', 'commit-visible-before-ack', 'after-ack'] as const;
export type CdfCrashPoint = (typeof CDF_CRASH_POINTS)[number];

/** JWT verification (jose): a shared HS256 secret or a PEM public key, with optional issuer/audience. */
export interface JwtConfig {
  secret?: string;
  publicKey?: string;
  issuer?: string;
  audience?: string;
}

export interface SecurityConfig {
  /** Bearer tokens accepted by the API (LAKETS_API_TOKENS); empty with no JWT means no authentication. */
  apiTokens: string[];
  jwt?: JwtConfig;
  /** Browser origins allowed by CORS and the WebSocket Origin check; unset means the server's own origin. */
  corsOrigins?: string[];
  /** Serve without authentication on a non-loopback HOST (LAKETS_ALLOW_ANONYMOUS=true). */
  allowAnonymous: boolean;
}

const PROFILES: Record<Config['profile'], Policy> = {
  demo: { chunkInterval: '1 minute', tierAfter: '3 minutes', dropAfter: '6 minutes' },
  production: { chunkInterval: '1 day', tierAfter: '7 days', dropAfter: '30 days' },
};

/** Longest one API statement may run: far above any legitimate read (candles over a day take milliseconds). */
export const DEFAULT_API_STATEMENT_TIMEOUT_MS = 10_000;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * What lives where in LAKETS_DATA_DIR: the embedded cluster, its log, the role passwords, who
 * supervises the cluster, and the lake (one Delta table per synced table, named after it).
 */
export interface DataPaths {
  root: string;
  /** The embedded cluster (a symbolic link when it had to be placed elsewhere). */
  pgData: string;
  /** Postgres's own output (rotated: postgres.log.1 ... next to it). */
  postgresLog: string;
  credentials: string;
  /** Which process supervises the cluster. */
  supervisor: string;
  /** The lake's root folder. */
  lake: string;
}

export function dataPaths(dataDir: string): DataPaths {
  const root = path.resolve(dataDir);
  return {
    root,
    pgData: path.join(root, 'pg'),
    postgresLog: path.join(root, 'postgres.log'),
    credentials: path.join(root, 'credentials.json'),
    supervisor: path.join(root, 'supervisor.json'),
    lake: path.join(root, 'lake'),
  };
}

/** The Delta table a source table is synced into on the default lake (LAKETS_LAKE_URL unset): LAKETS_DATA_DIR/lake/<table>. */
export function lakeTableDir(dataDir: string, table: string = TICK_TABLE): string {
  return path.join(dataPaths(dataDir).lake, table);
}

function intEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got "${raw}"`);
  }
  return value;
}

// Postgres interval text is validated by Postgres itself; here only a sanity check that it is
// not SQL or empty, since it is passed as a parameter anyway.
function intervalEnv(env: NodeJS.ProcessEnv, name: string, fallback: string): string {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^[0-9a-z :.]+$/i.test(raw)) throw new ConfigError(`${name} must be a Postgres interval such as "5 minutes", got "${raw}"`);
  return raw;
}

function listEnv(env: NodeJS.ProcessEnv, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

function boolEnv(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (raw === '' || raw === 'false' || raw === '0' || raw === 'no') return false;
  if (raw === 'true' || raw === '1' || raw === 'yes') return true;
  throw new ConfigError(`${name} must be "true" or "false", got "${env[name]}"`);
}

// Short tokens and secrets can be guessed; refusing them at start-up is cheaper than a breach.
const MIN_TOKEN_LENGTH = 16;
const MIN_JWT_SECRET_LENGTH = 32;

/** The security part of the configuration. */
function loadSecurityConfig(env: NodeJS.ProcessEnv): SecurityConfig {
  const apiTokens = listEnv(env, 'LAKETS_API_TOKENS');
  for (const token of apiTokens) {
    if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
      throw new ConfigError(`LAKETS_API_TOKENS: every token needs at least ${MIN_TOKEN_LENGTH} characters and no spaces`);
    }
  }
  const secret = env.LAKETS_JWT_SECRET || undefined;
  const publicKey = env.LAKETS_JWT_PUBLIC_KEY || undefined;
  if (secret && publicKey) throw new ConfigError('set LAKETS_JWT_SECRET or LAKETS_JWT_PUBLIC_KEY, not both');
  if (secret && secret.length < MIN_JWT_SECRET_LENGTH) {
    throw new ConfigError(`LAKETS_JWT_SECRET needs at least ${MIN_JWT_SECRET_LENGTH} characters`);
  }
  const issuer = env.LAKETS_JWT_ISSUER || undefined;
  const audience = env.LAKETS_JWT_AUDIENCE || undefined;
  if ((issuer || audience) && !secret && !publicKey) {
    throw new ConfigError('LAKETS_JWT_ISSUER / LAKETS_JWT_AUDIENCE need LAKETS_JWT_SECRET or LAKETS_JWT_PUBLIC_KEY');
  }
  const corsOrigins = listEnv(env, 'LAKETS_CORS_ORIGINS');
  for (const origin of corsOrigins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || parsed.origin !== origin.replace(/\/$/, '') || !/^https?:$/.test(parsed.protocol)) {
      throw new ConfigError(`LAKETS_CORS_ORIGINS: "${origin}" is not an origin such as https://dashboard.example.com:8443`);
    }
  }
  return {
    apiTokens,
    ...(secret || publicKey
      ? { jwt: { ...(secret ? { secret } : {}), ...(publicKey ? { publicKey } : {}), ...(issuer ? { issuer } : {}), ...(audience ? { audience } : {}) } }
      : {}),
    ...(corsOrigins.length ? { corsOrigins: corsOrigins.map((o) => o.replace(/\/$/, '')) } : {}),
    allowAnonymous: boolEnv(env, 'LAKETS_ALLOW_ANONYMOUS'),
  };
}

/** LAKETS_API_STATEMENT_TIMEOUT_MS. */
function loadApiStatementTimeoutMs(env: NodeJS.ProcessEnv): number {
  return intEnv(env, 'LAKETS_API_STATEMENT_TIMEOUT_MS', DEFAULT_API_STATEMENT_TIMEOUT_MS, 100, 3_600_000);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const profileName = env.LAKETS_PROFILE ?? 'demo';
  if (profileName !== 'demo' && profileName !== 'production') {
    throw new ConfigError(`LAKETS_PROFILE must be "demo" or "production", got "${profileName}"`);
  }
  const base = PROFILES[profileName];
  const databaseUrl = env.DATABASE_URL || undefined;
  const tickRate = intEnv(env, 'LAKETS_TICK_RATE', 1000, 0, 1_000_000);
  return {
    databaseUrl,
    databaseDirectUrl: env.DATABASE_DIRECT_URL || databaseUrl,
    databaseApiUrl: env.DATABASE_API_URL || undefined,
    port: intEnv(env, 'PORT', 4000, 0, 65535),
    host: env.HOST || '127.0.0.1',
    dataDir: path.resolve(env.LAKETS_DATA_DIR || '.lakets'),
    embeddedPgPort: intEnv(env, 'LAKETS_PG_PORT', 54329, 1, 65535),
    profile: profileName,
    policy: {
      chunkInterval: intervalEnv(env, 'LAKETS_CHUNK_INTERVAL', base.chunkInterval),
      tierAfter: intervalEnv(env, 'LAKETS_TIER_AFTER', base.tierAfter),
      dropAfter: intervalEnv(env, 'LAKETS_DROP_AFTER', base.dropAfter),
    },
    tickRate,
    tickBurst: intEnv(env, 'LAKETS_TICK_BURST', 0, 0, 1_000_000),
    symbols: intEnv(env, 'LAKETS_SYMBOLS', 10, 1, 5000),
    logLevel: env.LOG_LEVEL || 'info',
    maxFutureSkew: intervalEnv(env, 'LAKETS_MAX_FUTURE_SKEW', '5 minutes'),
    cdf: loadCdfConfig(env, profileName),
    backfillMs: loadBackfillMs(env, profileName, tickRate),
    apiConnectionLimit: intEnv(env, 'LAKETS_API_CONNECTION_LIMIT', 20, 2, 1_000),
    security: loadSecurityConfig(env),
    apiStatementTimeoutMs: loadApiStatementTimeoutMs(env),
    lake: loadLakeConfig(env, path.resolve(env.LAKETS_DATA_DIR || '.lakets')),
  };
}

function loadLakeConfig(env: NodeJS.ProcessEnv, dataDir: string): LakeConfig {
  let store: LakeStoreConfig;
  try {
    store = lakeStoreConfigFromEnv(env, dataDir);
  } catch (error) {
    if (error instanceof LakeStoreConfigError) throw new ConfigError(error.message);
    throw error;
  }
  const raw = env.LAKETS_LAKE_RETENTION?.trim() || DEFAULT_LAKE_RETENTION;
  const retentionMs = parseDuration(raw, 'LAKETS_LAKE_RETENTION', 3650 * 86_400_000);
  if (retentionMs < MIN_LAKE_RETENTION_MS) {
    throw new ConfigError(`LAKETS_LAKE_RETENTION must be at least 1 hour (an upload in flight must never look abandoned), got "${raw}"`);
  }
  return { store, retentionMs };
}

function loadCdfConfig(env: NodeJS.ProcessEnv, profile: Config['profile']): CdfConfig {
  const crashAt = env.LAKETS_CDF_CRASH_AT || undefined;
  if (crashAt !== undefined && !(CDF_CRASH_POINTS as readonly string[]).includes(crashAt)) {
    throw new ConfigError(`LAKETS_CDF_CRASH_AT must be one of ${CDF_CRASH_POINTS.join(', ')}, got "${crashAt}"`);
  }
  return {
    batchMaxMs: intEnv(env, 'LAKETS_CDF_BATCH_MS', profile === 'demo' ? 3_000 : 10_000, 50, 600_000),
    batchMaxRows: intEnv(env, 'LAKETS_CDF_BATCH_ROWS', 100_000, 1, 10_000_000),
    checkpointEvery: intEnv(env, 'LAKETS_CDF_CHECKPOINT_EVERY', 10, 1, 1_000_000),
    statusIntervalMs: intEnv(env, 'LAKETS_CDF_STATUS_MS', 1_000, 10, 600_000),
    ...(crashAt ? { crashAt: crashAt as CdfCrashPoint } : {}),
    crashAfterCommits: intEnv(env, 'LAKETS_CDF_CRASH_AFTER_COMMITS', 0, 0, 1_000_000),
  };
}

/** The demo's history when LAKETS_BACKFILL is unset and ticks are streamed. */
export const DEFAULT_DEMO_BACKFILL = '24 hours';
/** Longest history LAKETS_BACKFILL may ask for. */
const MAX_BACKFILL_MS = 7 * 24 * 3_600_000;

const UNIT_MS: Record<string, number> = {
  s: 1_000, sec: 1_000, secs: 1_000, second: 1_000, seconds: 1_000,
  m: 60_000, min: 60_000, mins: 60_000, minute: 60_000, minutes: 60_000,
  h: 3_600_000, hr: 3_600_000, hrs: 3_600_000, hour: 3_600_000, hours: 3_600_000,
  d: 86_400_000, day: 86_400_000, days: 86_400_000,
};

/**
 * LAKETS_BACKFILL as milliseconds of history (0 = off): "24 hours", "90 minutes", "2 days", "0",
 * "off". Unset: 24 hours in the demo profile while ticks are streamed, otherwise off.
 */
function loadBackfillMs(env: NodeJS.ProcessEnv, profile: Config['profile'], tickRate: number): number {
  const raw = env.LAKETS_BACKFILL?.trim();
  if (raw === undefined || raw === '') return profile === 'demo' && tickRate > 0 ? parseBackfillDuration(DEFAULT_DEMO_BACKFILL) : 0;
  return parseBackfillDuration(raw);
}

export function parseBackfillDuration(text: string): number {
  const raw = text.trim().toLowerCase();
  if (raw === '0' || raw === 'off' || raw === 'false' || raw === 'no') return 0;
  return parseDuration(text, 'LAKETS_BACKFILL', MAX_BACKFILL_MS, ', or "off"');
}

/** A duration such as "24 hours", "90 minutes" or "7 days" in milliseconds, at most `maxMs`. */
function parseDuration(text: string, name: string, maxMs: number, alternatives = ''): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/.exec(text.trim().toLowerCase());
  const unit = match ? UNIT_MS[match[2]!] : undefined;
  if (!match || unit === undefined) {
    throw new ConfigError(`${name} must be a duration such as "24 hours" or "90 minutes"${alternatives}, got "${text}"`);
  }
  const ms = Math.round(Number(match[1]) * unit);
  if (ms > maxMs) throw new ConfigError(`${name} may be at most ${Math.round(maxMs / 86_400_000)} days, got "${text}"`);
  return ms;
}
