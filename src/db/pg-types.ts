import pg from 'pg';
import { isPlainTimestampText, parsePlainTimestamp } from '../time/plain-timestamp.ts';

const TIMESTAMPTZ_OID = 1184;
const defaultTimestamptz = pg.types.getTypeParser(TIMESTAMPTZ_OID, 'text') as (value: string) => Date;

/**
 * timestamptz text → Date, with a fast path for what a UTC session sends (src/time/plain-timestamp.ts)
 * and pg's own parser for everything else (other offsets, BC, infinity). A candle read ships one
 * timestamptz per bar, and pg's regex-based parser is about a tenth of the whole client-side cost of
 * a 1,440-bar read. Same result as pg's parser: milliseconds truncated.
 */
export function parseTimestamptz(v: string): Date {
  if (isPlainTimestampText(v, true)) {
    const t = parsePlainTimestamp(v, true);
    if (t) return new Date(t.secondMs + Math.trunc(t.micros / 1000));
  }
  return defaultTimestamptz(v);
}

/** Type parsers of the API's connections: pg's defaults with the fast timestamptz path. */
export const apiTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === TIMESTAMPTZ_OID && format !== 'binary' ? parseTimestamptz : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};
