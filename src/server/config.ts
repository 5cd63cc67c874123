import path from 'node:path';

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
  /** Longest a change waits before the sync commits it to the lake (docs/ARCHITECTURE.md H7: ≈10 s in production). */
  cdfBatchMs: number;
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
}

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

/** The security part of the configuration (also read on its own by startApi when not given). */
export function loadSecurityConfig(env: NodeJS.ProcessEnv = process.env): SecurityConfig {
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

/** LAKETS_API_STATEMENT_TIMEOUT_MS (also read on its own by startApi when not given). */
export function loadApiStatementTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  return intEnv(env, 'LAKETS_API_STATEMENT_TIMEOUT_MS', DEFAULT_API_STATEMENT_TIMEOUT_MS, 100, 3_600_000);
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const profileName = env.LAKETS_PROFILE ?? 'demo';
  if (profileName !== 'demo' && profileName !== 'production') {
    throw new ConfigError(`LAKETS_PROFILE must be "demo" or "production", got "${profileName}"`);
  }
  const base = PROFILES[profileName];
  const databaseUrl = env.DATABASE_URL || undefined;
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
    tickRate: intEnv(env, 'LAKETS_TICK_RATE', 1000, 0, 1_000_000),
    tickBurst: intEnv(env, 'LAKETS_TICK_BURST', 0, 0, 1_000_000),
    symbols: intEnv(env, 'LAKETS_SYMBOLS', 10, 1, 5000),
    logLevel: env.LOG_LEVEL || 'info',
    maxFutureSkew: intervalEnv(env, 'LAKETS_MAX_FUTURE_SKEW', '5 minutes'),
    cdfBatchMs: intEnv(env, 'LAKETS_CDF_BATCH_MS', profileName === 'demo' ? 3_000 : 10_000, 50, 600_000),
    apiConnectionLimit: intEnv(env, 'LAKETS_API_CONNECTION_LIMIT', 20, 2, 1_000),
    security: loadSecurityConfig(env),
    apiStatementTimeoutMs: loadApiStatementTimeoutMs(env),
  };
}
