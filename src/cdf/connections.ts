import pg from 'pg';
import type { Logger } from '../logger.ts';
import { ignoreWithReason } from './status.ts';

/**
 * Session settings of every sync connection: values come back as Postgres prints them in UTC with
 * ISO dates and shortest-exact doubles, the text the lake writer reads (never a JS Date, which drops
 * microseconds).
 */
export const SESSION_OPTIONS = '-c TimeZone=UTC -c DateStyle=ISO -c extra_float_digits=1';

/** Type parsers that keep every value as the text Postgres sent. */
export const TEXT_TYPES = { getTypeParser: () => (value: string) => value };

/**
 * A plain connection of the sync, not connected yet. An 'error' event of a connection (its server
 * went away while idle) is only logged: the next query on it fails and the caller handles that, or
 * `onError` (a session's control connection) ends the session.
 */
export function syncClient(
  url: string,
  applicationName: string,
  log: Logger | undefined,
  onError?: (error: Error) => void,
  extra: Partial<pg.ClientConfig> = {},
): pg.Client {
  const client = new pg.Client({ connectionString: url, application_name: applicationName, options: SESSION_OPTIONS, ...extra });
  client.on('error', onError ?? ignoreWithReason(log, `${applicationName} connection lost; its next query fails and is handled there`));
  return client;
}

/** Runs `work` on a short-lived connection of its own. */
export async function withClient<T>(url: string, log: Logger | undefined, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = syncClient(url, 'lakets-cdf-sync', log);
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end().catch(ignoreWithReason(log, 'closing a short-lived connection failed; it is gone either way'));
  }
}
