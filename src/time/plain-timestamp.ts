// Timestamps in the one text form a UTC session of Postgres prints them in, parsed without regular
// expressions or Date string parsing: 'YYYY-MM-DD HH:MM:SS[.f{1,6}]', then '+00' for timestamptz.
// Both hot paths that read many timestamps use it: the API's row parser (src/db/pg-types.ts) and
// the lake writer's text columns (src/lake/text-columns.ts). Anything else (other offsets, BC,
// infinity, years before 1000) is left to the callers' general parsers.

/** Digits v[from, to) as a number, or -1 when any of them is not a digit. */
function digits(v: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** True when `v` has the plain form, '+00' included exactly when `utc`, with a year from 1000 on. */
export function isPlainTimestampText(v: string, utc: boolean): boolean {
  const n = v.length - (utc ? 3 : 0);
  if (utc && (v.charCodeAt(n) !== 43 /* + */ || v.charCodeAt(n + 1) !== 48 || v.charCodeAt(n + 2) !== 48)) return false;
  if (!(n === 19 || (n >= 21 && n <= 26 && v.charCodeAt(19) === 46 /* . */))) return false;
  const first = v.charCodeAt(0);
  return (
    first >= 49 && first <= 57 &&
    v.charCodeAt(4) === 45 && v.charCodeAt(7) === 45 && v.charCodeAt(10) === 32 && v.charCodeAt(13) === 58 && v.charCodeAt(16) === 58
  );
}

export interface PlainTimestamp {
  /** Milliseconds since the epoch of the whole second (UTC, or the wall clock for timestamp). */
  readonly secondMs: number;
  /** The fraction of the second, in microseconds (0–999,999). */
  readonly micros: number;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** The instant of a text of the plain form (isPlainTimestampText), or undefined when a field is impossible. */
export function parsePlainTimestamp(v: string, utc: boolean): PlainTimestamp | undefined {
  const n = v.length - (utc ? 3 : 0);
  const year = digits(v, 0, 4);
  const month = digits(v, 5, 7);
  const day = digits(v, 8, 10);
  const hour = digits(v, 11, 13);
  const minute = digits(v, 14, 16);
  const second = digits(v, 17, 19);
  const places = n === 19 ? 0 : n - 20;
  const fraction = places === 0 ? 0 : digits(v, 20, n);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  if (
    year < 1000 || month < 1 || month > 12 || day < 1 || day > (month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] as number)) ||
    hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59 || fraction < 0
  ) {
    return undefined;
  }
  // Integer arithmetic, so that '.29' is 290,000 µs and not 289,999.99…
  return { secondMs: Date.UTC(year, month - 1, day, hour, minute, second), micros: fraction * 10 ** (6 - places) };
}
