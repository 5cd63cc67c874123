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
}

const PROFILES: Record<Config['profile'], Policy> = {
  demo: { chunkInterval: '1 minute', tierAfter: '3 minutes', dropAfter: '6 minutes' },
  production: { chunkInterval: '1 day', tierAfter: '7 days', dropAfter: '30 days' },
};

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
  };
}
