// What a job's command-line entry does first: its configuration, logger and database (DATABASE_URL,
// or the embedded Postgres of LAKETS_DATA_DIR, joined when `npm start` already runs it) — or one
// clear line and exit 1 when the database cannot be opened.

import { loadConfig, type Config } from '../src/config.ts';
import { openDatabase, type DatabaseHandle } from '../src/db/database.ts';
import { createLogger, type Logger } from '../src/logger.ts';

export async function openJobEntry(): Promise<{ config: Config; logger: Logger; db: DatabaseHandle }> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  try {
    return { config, logger, db: await openDatabase(config, logger, { joinRunning: true }) };
  } catch (err) {
    console.error(`lakets: ${(err as Error).message}`);
    process.exit(1);
  }
}
