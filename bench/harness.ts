import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres, ensureDatabase, type EmbeddedPostgres } from '../src/db/embedded/postgres.ts';
import { migrate } from '../src/db/migrate.ts';
import { freePort } from '../test/helpers/ports.ts';

export const RESULTS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'results');

export interface BenchDatabase {
  url: string;
  /** The embedded server's postmaster (for the CPU of its processes); unset with DATABASE_URL. */
  postgresPid?: number;
  stop(): Promise<void>;
}

/**
 * A fresh database for one benchmark: on DATABASE_URL's server when set, else on an embedded
 * Postgres with default durability settings (fsync on), in a temporary directory.
 */
export async function benchDatabase(name: string): Promise<BenchDatabase> {
  let embedded: EmbeddedPostgres | undefined;
  let dir: string | undefined;
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-bench-'));
    fs.chmodSync(dir, 0o755);
    embedded = await startEmbeddedPostgres({ dataDir: dir, port: await freePort() });
    adminUrl = embedded.adminUrl;
  }
  const dbName = `bench_${name}_${Date.now()}`;
  const url = await ensureDatabase(adminUrl, dbName);
  await migrate(url);
  return {
    url,
    ...(embedded ? { postgresPid: embedded.pid } : {}),
    async stop() {
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${admin.escapeIdentifier(dbName)} WITH (FORCE)`);
      await admin.end();
      await embedded?.stop();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Merges one benchmark's report into bench/results/latest.json. */
export function writeReport(name: string, report: Record<string, unknown>): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, 'latest.json');
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    // first report
  }
  all[name] = { ...report, measuredAt: new Date().toISOString(), machine: { cpus: os.cpus().length, node: process.version } };
  fs.writeFileSync(file, JSON.stringify(all, null, 2) + '\n');
  return file;
}
