import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, vi } from 'vitest';
import { createLogger, type Logger } from '../../src/logger.ts';
import type { ApiOptions, RunningApi } from '../../src/main.ts';
import { startTestApi } from './api.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';

export interface TestContextOptions {
  /** Migrate the file's database (default: yes). */
  migrate?: boolean;
  /** The tick table's chunk interval (default: one minute). */
  chunkInterval?: string;
  /** Start an API over the database for the file (ctx.api), with these options. */
  api?: boolean | Partial<ApiOptions>;
}

/**
 * What a test file works with: its own database on the suite's Postgres, the API over it, more of
 * either when a test needs them, temporary folders — all of it closed and removed after the file,
 * in the reverse order it was made.
 */
export class TestContext {
  readonly logger: Logger = createLogger('silent');
  private database: TestDatabase | undefined;
  private runningApi: RunningApi | undefined;
  private readonly cleanups: Array<{ what: string; run: () => Promise<unknown> | unknown }> = [];

  /** The file's database (made before its tests run). */
  get db(): TestDatabase {
    if (!this.database) throw new Error('the test context has no database yet: use it inside a test or hook');
    return this.database;
  }

  /** The file's API: started before its tests when asked for, or the first one a hook started. */
  get api(): RunningApi {
    if (!this.runningApi) throw new Error('the test context has no API: pass { api: true } to useTestContext, or start one');
    return this.runningApi;
  }

  /** Another database of the file's, dropped with the rest. */
  async newDatabase(label: string, options: Pick<TestContextOptions, 'migrate' | 'chunkInterval'> = {}): Promise<TestDatabase> {
    const db = await createTestDatabase(label, options);
    this.defer(`database ${db.name}`, () => db.drop());
    return db;
  }

  /**
   * An API (on the file's database unless `url` says otherwise), closed with the rest; the first
   * one started is the file's (ctx.api).
   */
  async startApi(options: Partial<ApiOptions> = {}, url: string = this.db.url): Promise<RunningApi> {
    const api = await startTestApi(url, options);
    this.defer('api', () => api.close());
    this.runningApi ??= api;
    return api;
  }

  /** A new temporary folder, removed with the rest. */
  tempDir(label: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `lakets-${label}-`));
    this.defer(`folder ${dir}`, () => fs.rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  /** Something to close or remove after the file, before what was made earlier. */
  defer(what: string, run: () => Promise<unknown> | unknown): void {
    this.cleanups.push({ what, run });
  }

  async setUp(label: string, options: TestContextOptions): Promise<void> {
    this.database = await this.newDatabase(label, options);
    if (options.api) await this.startApi(options.api === true ? {} : options.api);
  }

  /** Runs every clean-up, the last made first; a failing one is reported after the others ran. */
  async cleanUp(): Promise<void> {
    const failures: string[] = [];
    for (const { what, run } of this.cleanups.reverse()) {
      try {
        await run();
      } catch (err) {
        failures.push(`${what}: ${(err as Error).message}`);
      }
    }
    this.cleanups.length = 0;
    if (failures.length) throw new Error(`clean-up failed: ${failures.join('; ')}`);
  }
}

/** The context of a test file: set up before its tests, cleaned up after them. */
export function useTestContext(label: string, options: TestContextOptions = {}): TestContext {
  const ctx = new TestContext();
  beforeAll(() => ctx.setUp(label, options));
  afterAll(() => ctx.cleanUp());
  return ctx;
}

/** Waits until `predicate` holds (vitest's vi.waitFor), failing with what was awaited. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition', intervalMs = 50): Promise<void> {
  await vi.waitFor(
    async () => {
      if (!(await predicate())) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    },
    { timeout: timeoutMs, interval: intervalMs },
  );
}
