import { builder } from './builder.ts';
import { badInput } from './errors.ts';

/**
 * The DateTime input format: ISO-8601 / RFC 3339 date-times with an explicit offset only
 * ("2026-11-24T15:04:05Z", "2026-11-24T16:04:05.123+01:00"). Numbers are refused (a bar's `time`
 * is in seconds, epoch milliseconds would silently select nothing) and so are the loose strings
 * `new Date()` guesses at ("$1" would be 2001-01-01), because a guessed instant answers a question
 * the client did not ask.
 */
export const DATE_TIME_FORMAT = 'an ISO-8601 date-time with a time-zone offset, e.g. "2026-11-24T15:04:05Z" or "2026-11-24T16:04:05.123+01:00"';

/** Years a DateTime may name: wide enough for any market data, and well inside what Postgres stores. */
export const MIN_YEAR = 1900;
export const MAX_YEAR = 9999;

const ISO_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

export function parseDateTime(value: unknown): Date {
  if (typeof value !== 'string') {
    throw badInput(`DateTime must be a string: ${DATE_TIME_FORMAT}; got a ${value === null ? 'null' : typeof value}`, {
      expected: 'ISO-8601 date-time with offset',
    });
  }
  const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
  const m = value.length <= 40 ? ISO_DATE_TIME.exec(value) : null;
  if (!m) throw badInput(`"${shown}" is not a valid DateTime: expected ${DATE_TIME_FORMAT}`, { expected: 'ISO-8601 date-time with offset' });
  const [year, month, day, hour, minute] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as [number, number, number, number, number];
  const second = Number(m[6] ?? 0);
  const millis = Number((m[7] ?? '').slice(0, 3).padEnd(3, '0'));
  const offsetMinutes = m[8] ? 0 : (m[9] === '-' ? -1 : 1) * (Number(m[10]) * 60 + Number(m[11]));
  if (year < MIN_YEAR || year > MAX_YEAR) {
    throw badInput(`"${shown}": the year must be between ${MIN_YEAR} and ${MAX_YEAR}`, { expected: 'ISO-8601 date-time with offset' });
  }
  const local = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  const check = new Date(local);
  const fieldsValid =
    check.getUTCFullYear() === year &&
    check.getUTCMonth() === month - 1 &&
    check.getUTCDate() === day &&
    hour < 24 &&
    minute < 60 &&
    second < 60 &&
    Number(m[10] ?? 0) < 24 &&
    Number(m[11] ?? 0) < 60;
  if (!fieldsValid) throw badInput(`"${shown}" is not a valid DateTime: no such date or time`, { expected: 'ISO-8601 date-time with offset' });
  return new Date(local - offsetMinutes * 60_000);
}

builder.scalarType('DateTime', {
  description: 'An instant in time as an ISO-8601 string with a time-zone offset, e.g. "2026-11-24T15:04:05.123Z" (outputs are UTC).',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: (value) => parseDateTime(value),
});
