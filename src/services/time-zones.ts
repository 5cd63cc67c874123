import { sql } from 'kysely';
import type { Db } from '../db/pool.ts';
import { InputError } from './input-error.ts';
import { quoteZone, UTC } from './granularity.ts';

/** IANA names: letters, digits, "_", "+", "-", in "/"-separated parts ("America/Argentina/Buenos_Aires", "Etc/GMT+5"). */
const IANA_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+){0,3}$/;
const MAX_NAME_LENGTH = 64;

/**
 * The time zones calendar bars may be cut in: the IANA names the database knows
 * (pg_timezone_names), read once per process. Postgres would also take POSIX rules ("UTC+5",
 * which means five hours *west*) and abbreviations; a chart front end means a named zone, so only
 * names are accepted, matched case-insensitively and returned as Postgres spells them (so that
 * "america/new_york" and "America/New_York" are one size, one subscription, one Candle id).
 */
export class TimeZones {
  private names: Map<string, string> | undefined;
  private loading: Promise<Map<string, string>> | undefined;

  constructor(private readonly db: Db) {}

  /** The canonical spelling of a zone argument, or an InputError naming `timeZone`. */
  async canonical(name: string, argument = 'timeZone'): Promise<string> {
    if (name.toUpperCase() === UTC) return UTC;
    if (name.length > MAX_NAME_LENGTH || !IANA_NAME.test(name)) {
      throw new InputError(`${quoteZone(name)} is not a time zone: use an IANA name such as "America/New_York" or "UTC"`, { argument });
    }
    const found = (await this.all()).get(name.toLowerCase());
    if (!found) throw new InputError(`unknown time zone ${quoteZone(name)}: use an IANA name such as "America/New_York" or "UTC"`, { argument });
    return found;
  }

  private all(): Promise<Map<string, string>> {
    if (this.names) return Promise.resolve(this.names);
    this.loading ??= sql<{ name: string }>`SELECT name FROM pg_timezone_names`
      .execute(this.db)
      .then(({ rows }) => {
        this.names = new Map(rows.filter((r) => IANA_NAME.test(r.name)).map((r) => [r.name.toLowerCase(), r.name]));
        return this.names;
      })
      .finally(() => (this.loading = undefined));
    return this.loading;
  }
}
