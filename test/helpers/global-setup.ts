import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded/postgres.ts';
import { freePort } from './ports.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    pgAdminUrl: string;
  }
}

/**
 * One real Postgres for the whole suite: DATABASE_URL when set (its role needs CREATEDB), else an
 * embedded server in a temporary directory. Each test file creates its own database on it.
 */
let embedded: EmbeddedPostgres | undefined;
let dataDir: string | undefined;

export async function setup(project: TestProject): Promise<void> {
  if (process.env.DATABASE_URL) {
    project.provide('pgAdminUrl', process.env.DATABASE_URL);
    return;
  }
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-test-pg-'));
  fs.chmodSync(dataDir, 0o755);
  embedded = await startEmbeddedPostgres({ dataDir, port: await freePort(), fast: true });
  project.provide('pgAdminUrl', embedded.adminUrl);
}

export async function teardown(): Promise<void> {
  await embedded?.stop();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
}
