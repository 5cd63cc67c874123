import { InputError, quoteForMessage } from './input-error.ts';

/**
 * Bar sizes: a granularity and a multiple of it, in a time zone for calendar granularities.
 * MINUTE and HOUR bars are fixed lengths aligned to 2000-01-01T00:00Z (the zone plays no part);
 * DAY, WEEK and MONTH bars start at local midnight in their zone (weeks on Monday, months on the
 * 1st, multiples of months aligned to January). The database computes the buckets
 * (lakets.candle_bucket); this module validates sizes, names them and prices them.
 */
export type Granularity = 'minute' | 'hour' | 'day' | 'week' | 'month';

/** The granularities of the three rollups (the watermarks report these). */
export type RollupGranularity = 'minute' | 'hour' | 'day';

/** Multiples each granularity allows: divisors of an hour, of a day, and quarters/halves/years of months. */
export const ALLOWED_MULTIPLES: Readonly<Record<Granularity, readonly number[]>> = {
  minute: [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60],
  hour: [1, 2, 3, 4, 6, 8, 12, 24],
  day: [1],
  week: [1],
  month: [1, 3, 6, 12],
};

/** The time zone of fixed-length sizes, and the default of calendar ones. */
export const UTC = 'UTC';

export interface BarSize {
  granularity: Granularity;
  multiple: number;
  /** A canonical IANA name; "UTC" for MINUTE and HOUR sizes. */
  timeZone: string;
}

export function isCalendar(granularity: Granularity): boolean {
  return granularity === 'day' || granularity === 'week' || granularity === 'month';
}

/** Checks the multiple (the zone is checked by TimeZones, which knows the database's list). */
export function checkMultiple(granularity: Granularity, multiple: number): void {
  if (!Number.isInteger(multiple) || !ALLOWED_MULTIPLES[granularity].includes(multiple)) {
    throw new InputError(`multiple ${multiple} is not allowed for ${granularity.toUpperCase()}: use one of ${ALLOWED_MULTIPLES[granularity].join(', ')}`, {
      argument: 'multiple',
    });
  }
}

/** One string per size: feeds group subscribers by it, and Candle ids contain it. */
export function sizeKey(size: BarSize): string {
  return `${size.granularity.toUpperCase()}:${size.multiple}:${size.timeZone}`;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;

/** The usual length of a bar (a calendar month counted as 31 days): for window limits, not for bucketing. */
export function nominalBarMs(granularity: Granularity, multiple: number): number {
  const m = Math.max(1, multiple);
  switch (granularity) {
    case 'minute':
      return m * MINUTE_MS;
    case 'hour':
      return m * HOUR_MS;
    case 'day':
      return DAY_MS;
    case 'week':
      return 7 * DAY_MS;
    case 'month':
      return m * 31 * DAY_MS;
  }
}

/** The shortest a bar of this size can be (a 23-hour day, a February): how many a window can hold at most. */
export function shortestBarMs(granularity: Granularity, multiple: number): number {
  const m = Math.max(1, multiple);
  switch (granularity) {
    case 'minute':
      return m * MINUTE_MS;
    case 'hour':
      return m * HOUR_MS;
    case 'day':
      return DAY_MS - HOUR_MS;
    case 'week':
      return 7 * DAY_MS - HOUR_MS;
    case 'month':
      return m * 28 * DAY_MS - HOUR_MS;
  }
}

/**
 * Whether a zone's offsets are whole hours over the coming year (then its calendar bars compose
 * from hours; otherwise minutes at their edges). Intl stands in for the database here because the
 * cost of a request is priced before it runs.
 */
const wholeHourZones = new Map<string, boolean>();
export function offsetsAreWholeHours(timeZone: string): boolean {
  const known = wholeHourZones.get(timeZone);
  if (known !== undefined) return known;
  let whole: boolean;
  try {
    const format = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' });
    const now = Date.now();
    whole = [0, 91, 182, 273].every((days) => {
      const name = format.formatToParts(new Date(now + days * DAY_MS)).find((p) => p.type === 'timeZoneName')?.value ?? '';
      return /^GMT(?:[+-]\d{2}:00)?$/.test(name);
    });
  } catch {
    // Not a zone Intl knows: almost surely refused before any query (TimeZones checks the
    // database's list), so priced like most zones, and the client hears what is wrong with it.
    return true;
  }
  if (wholeHourZones.size < 1000) wholeHourZones.set(timeZone, whole);
  return whole;
}

/**
 * Rollup rows a bar of this size is composed of, at most (what the database reads for it): the
 * cost of one bar. Calendar bars add the walk from bar to bar (two index probes each).
 */
export function rowsPerBar(granularity: Granularity, multiple: number, timeZone: string): number {
  const m = Math.max(1, multiple);
  const utc = timeZone.toUpperCase() === UTC;
  const hourly = utc || offsetsAreWholeHours(timeZone);
  // A local day: one UTC day row; or up to 25 hours; or 24 hours and 60 minutes at its edges.
  const edges = utc ? 0 : hourly ? 24 : 84;
  switch (granularity) {
    case 'minute':
      return Math.min(m, 60);
    case 'hour':
      return Math.min(m, 24);
    case 'day':
      return (utc ? 1 : edges) + 2;
    case 'week':
      return 7 + edges + 2;
    case 'month':
      return 31 * Math.min(m, 12) + edges + 2;
  }
}

/** A zone name as a client wrote it, for messages. */
export function quoteZone(name: string): string {
  return quoteForMessage(name, 40);
}
