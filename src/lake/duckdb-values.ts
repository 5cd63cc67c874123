// Turns DuckDB values into plain JS values for callers that want rows as objects.
//
// Why not DuckDB's own `getRowObjectsJS()`: it turns every timestamp into a JS `Date`, which drops the
// microseconds (our ticks carry microsecond timestamps, see docs/ARCHITECTURE.md H1), and decimals into doubles.
// Here everything stays lossless:
//   BIGINT / HUGEINT        -> bigint
//   DECIMAL                 -> string, e.g. "101.250"
//   TIMESTAMP WITH TIME ZONE -> ISO string in UTC with 6 fraction digits, e.g. "2020-02-01T08:09:10.000000Z"
//   TIMESTAMP (naive)       -> the same without a zone, e.g. "2021-11-18T02:30:00.123456"
//   TIMESTAMP_NS            -> 9 fraction digits; TIMESTAMP_S / _MS are widened to 6
//   DATE                    -> "YYYY-MM-DD"; TIME, UUID, INTERVAL and the rest -> their DuckDB text form
//   LIST / ARRAY -> array, STRUCT -> object, MAP -> Map, BLOB -> Uint8Array
// Fixed-width fractions keep the strings sortable and easy to compare in tests.

import {
  DuckDBArrayValue,
  DuckDBBlobValue,
  DuckDBDateValue,
  DuckDBDecimalValue,
  DuckDBListValue,
  DuckDBMapValue,
  DuckDBStructValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampNanosecondsValue,
  DuckDBTimestampSecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  type DuckDBValue,
} from '@duckdb/node-api';

export type PlainValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PlainValue[]
  | Map<PlainValue, PlainValue>
  | { [key: string]: PlainValue };

export type PlainRow = Record<string, PlainValue>;

export function toPlainValue(value: DuckDBValue): PlainValue {
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof DuckDBTimestampTZValue) return formatTimestamp(value.isFinite, value.micros, 1_000_000n, 'Z', value);
  if (value instanceof DuckDBTimestampValue) return formatTimestamp(value.isFinite, value.micros, 1_000_000n, '', value);
  if (value instanceof DuckDBTimestampNanosecondsValue) {
    return formatTimestamp(value.isFinite, value.nanos, 1_000_000_000n, '', value);
  }
  if (value instanceof DuckDBTimestampMillisecondsValue) {
    return formatTimestamp(value.isFinite, value.millis * 1000n, 1_000_000n, '', value);
  }
  if (value instanceof DuckDBTimestampSecondsValue) {
    return formatTimestamp(value.isFinite, value.seconds * 1_000_000n, 1_000_000n, '', value);
  }
  if (value instanceof DuckDBDateValue) return value.toString();
  if (value instanceof DuckDBDecimalValue) return value.toString();
  if (value instanceof DuckDBBlobValue) return value.bytes;
  if (value instanceof DuckDBListValue || value instanceof DuckDBArrayValue) return value.items.map(toPlainValue);
  if (value instanceof DuckDBStructValue) {
    const out: { [key: string]: PlainValue } = {};
    for (const [key, item] of Object.entries(value.entries)) out[key] = toPlainValue(item);
    return out;
  }
  if (value instanceof DuckDBMapValue) {
    return new Map(value.entries.map((entry) => [toPlainValue(entry.key), toPlainValue(entry.value)]));
  }
  return value.toString();
}

export function toPlainRow(row: Record<string, DuckDBValue>): PlainRow {
  const out: PlainRow = {};
  for (const [key, value] of Object.entries(row)) out[key] = toPlainValue(value);
  return out;
}

/**
 * `ticks` counts units of `1 / ticksPerSecond` since the Unix epoch. The calendar part goes through
 * `Date` (milliseconds are enough for it); the fraction is printed from the exact integer.
 */
function formatTimestamp(
  isFinite: boolean,
  ticks: bigint,
  ticksPerSecond: bigint,
  zoneSuffix: string,
  original: { toString(): string },
): string {
  if (!isFinite) return original.toString(); // 'infinity' / '-infinity'
  const seconds = floorDiv(ticks, ticksPerSecond);
  const fraction = ticks - seconds * ticksPerSecond;
  const date = new Date(Number(seconds) * 1000);
  if (Number.isNaN(date.getTime())) return original.toString(); // beyond the range of JS dates
  const digits = ticksPerSecond.toString().length - 1;
  const wholeSeconds = date.toISOString().slice(0, -5); // drop ".mmmZ"
  return `${wholeSeconds}.${fraction.toString().padStart(digits, '0')}${zoneSuffix}`;
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b !== 0n && a < 0n !== b < 0n ? q - 1n : q;
}
