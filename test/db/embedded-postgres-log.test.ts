// The embedded Postgres' log stays bounded: postgres.log is rotated past its size limit and only
// a fixed number of older files is kept, all readable by their owner only.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { LOG_FILES_KEPT, startEmbeddedPostgres } from '../../src/db/embedded/postgres.ts';

const LOG_FILE = 'postgres.log';
import { freePort } from '../helpers/ports.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lakets-pglog-'));
fs.chmodSync(tmp, 0o755);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('postgres.log', () => {
  it('is rotated past its size limit, keeping a fixed number of older files', async () => {
    const dataDir = path.join(tmp, 'data');
    const maxBytes = 16 * 1024;
    const server = await startEmbeddedPostgres({ dataDir, port: await freePort(), fast: true, logMaxBytes: maxBytes });
    try {
      const client = new pg.Client({ connectionString: server.adminUrl });
      await client.connect();
      // ~1 MB of server log lines: about sixty times the limit.
      for (let round = 0; round < 20; round++) {
        await client.query(`DO $$ BEGIN FOR i IN 1..200 LOOP RAISE LOG 'lakets log filler %', repeat('x', 200); END LOOP; END $$`);
      }
      await client.end();
    } finally {
      await server.stop();
    }
    const files = fs.readdirSync(dataDir).filter((f) => f.startsWith(LOG_FILE)).sort();
    expect(files).toEqual([LOG_FILE, ...Array.from({ length: LOG_FILES_KEPT }, (_, i) => `${LOG_FILE}.${i + 1}`)]);
    for (const file of files) {
      const stat = fs.statSync(path.join(dataDir, file));
      expect(stat.mode & 0o777).toBe(0o600);
      // A file is rotated after the write that crossed the limit: at most one pipe read (64 KiB) over it.
      expect(stat.size).toBeLessThanOrEqual(maxBytes + 64 * 1024);
    }
    // The newest lines are in postgres.log, and the shutdown is the last thing logged.
    expect(fs.readFileSync(path.join(dataDir, LOG_FILE), 'utf8')).toMatch(/database system is shut down/);
  });
});
