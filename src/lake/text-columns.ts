// How one column of values goes into DuckDB. Values come as Postgres's text output, or already
// typed (number, bigint, a timestamp's microseconds) when they were decoded from binary. Text is
// converted here into a native vector when that conversion is exact and cheap, else appended as
// VARCHAR and cast in SQL.
//
// Why: every VARCHAR value crosses into DuckDB with a native call of its own, which made the append
// the largest single cost of a Delta commit of the change feed (and its casts the next). Numbers
// and UTC timestamps convert in JS for a fraction of that and fill typed arrays copied in one call.
// The conversions give exactly the value DuckDB's cast would, and refuse what the cast would refuse.

import {
  BIGINT,
  DOUBLE,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
  INTEGER,
  SMALLINT,
  TIMESTAMP,
  TIMESTAMPTZ,
  VARCHAR,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import type { DeltaPrimitiveTypeName } from './schema.ts';
import { isPlainTimestampText, parsePlainTimestamp } from '../time/plain-timestamp.ts';

export { isPlainTimestampText };

/** A timestamp as microseconds since 1970-01-01 00:00:00 (UTC for timestamptz, wall clock otherwise). */
export interface LakeTimestamp {
  readonly micros: bigint;
}

/**
 * One value of a row: Postgres's text form, or the typed value (number for float and integer
 * columns up to 32 bits, bigint for bigint, LakeTimestamp for timestamps); null is SQL NULL.
 */
export type LakeValue = string | number | bigint | LakeTimestamp | null;
export type LakeRow = readonly LakeValue[];

export interface ColumnLoader {
  /** The type of the vector the values are appended as. */
  readonly vectorType: DuckDBType;
  /** Converts one non-null value; absent: the value goes in as it is. */
  readonly convert?: (value: Exclude<LakeValue, null>) => DuckDBValue;
  /** Appended as VARCHAR and cast to the column's type in SQL. */
  readonly castInSql: boolean;
}

const AS_TEXT: ColumnLoader = { vectorType: VARCHAR, castInSql: false };
const CAST_IN_SQL: ColumnLoader = { vectorType: VARCHAR, castInSql: true };

const DOUBLE_TEXT = /^[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|Infinity|NaN)$/;
const INTEGER_TEXT = /^[+-]?\d+$/;

function refuse(text: string, type: string): never {
  throw new Error(`Conversion Error: could not convert string ${JSON.stringify(text)} to ${type}`);
}

/** float8 text → number: Postgres prints the shortest text that reads back as the same double. */
export function doubleFromText(text: string): number {
  if (!DOUBLE_TEXT.test(text)) refuse(text, 'DOUBLE');
  return Number(text);
}

export function bigintFromText(text: string): bigint {
  if (!INTEGER_TEXT.test(text)) refuse(text, 'BIGINT');
  const value = BigInt(text);
  if (BigInt.asIntN(64, value) !== value) refuse(text, 'BIGINT');
  return value;
}

function integerFromText(text: string, bits: 16 | 32): number {
  const type = bits === 16 ? 'SMALLINT' : 'INTEGER';
  if (!INTEGER_TEXT.test(text)) refuse(text, type);
  const value = Number(text);
  const limit = bits === 16 ? 32_768 : 2_147_483_648;
  if (value < -limit || value >= limit) refuse(text, type);
  return value;
}

/** Microseconds since the epoch of a timestamp text of the plain form; throws on an impossible one. */
export function microsFromText(v: string, utc: boolean): bigint {
  const t = parsePlainTimestamp(v, utc);
  if (!t) refuse(v, utc ? 'TIMESTAMP WITH TIME ZONE' : 'TIMESTAMP');
  const total = t.secondMs * 1000 + t.micros;
  return Number.isSafeInteger(total) ? BigInt(total) : BigInt(t.secondMs) * 1000n + BigInt(t.micros);
}

/** Converts through `convert`, reusing the last result for a repeated text (a commit timestamp repeats per transaction). */
function remembering<T>(convert: (text: string) => T): (text: string) => T {
  let lastText: string | undefined;
  let lastValue: T | undefined;
  return (text) => {
    if (text !== lastText) {
      lastValue = convert(text);
      lastText = text;
    }
    return lastValue as T;
  };
}

/** Text converted by `fromText`; a typed value of the expected JS type passes as it is. */
function textOr<T>(jsType: 'number' | 'bigint', fromText: (text: string) => T, column: string): (value: Exclude<LakeValue, null>) => DuckDBValue {
  return (value) => {
    if (typeof value === 'string') return fromText(value) as DuckDBValue;
    if (typeof value !== jsType) throw new Error(`Conversion Error: a ${typeof value} value for ${column} column`);
    return value as DuckDBValue;
  };
}

/** SQL's text for a typed value of a column cast in SQL (a float, or a timestamp beside text that is not plain). */
function asText(value: Exclude<LakeValue, null>): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object') {
    const ms = value.micros / 1000n - (value.micros % 1000n < 0n ? 1n : 0n);
    const micros = value.micros - ms * 1000n;
    const iso = new Date(Number(ms)).toISOString(); // 'YYYY-MM-DDTHH:MM:SS.mmmZ'
    return `${iso.slice(0, 10)} ${iso.slice(11, 23)}${micros.toString().padStart(3, '0')}`;
  }
  return String(value);
}
const CAST_TYPED_IN_SQL: ColumnLoader = { vectorType: VARCHAR, convert: asText, castInSql: true };

/** The loader for column `index` of these rows, of Delta type `type`. */
export function columnLoader(type: DeltaPrimitiveTypeName, rows: readonly LakeRow[], index: number): ColumnLoader {
  switch (type) {
    case 'string':
      return AS_TEXT;
    case 'double':
      return { vectorType: DOUBLE, convert: textOr('number', doubleFromText, 'DOUBLE'), castInSql: false };
    case 'long':
      return { vectorType: BIGINT, convert: textOr('bigint', bigintFromText, 'BIGINT'), castInSql: false };
    case 'integer':
      return { vectorType: INTEGER, convert: textOr('number', (t) => integerFromText(t, 32), 'INTEGER'), castInSql: false };
    case 'short':
      return { vectorType: SMALLINT, convert: textOr('number', (t) => integerFromText(t, 16), 'SMALLINT'), castInSql: false };
    case 'timestamp':
    case 'timestamp_ntz': {
      const utc = type === 'timestamp';
      // Natively only when every value of the batch is typed or has the plain text form (one vector
      // type per column); a timestamp value is appended as it is (the vector reads its micros).
      for (const row of rows) {
        const value = row[index];
        if (typeof value === 'string' && !isPlainTimestampText(value, utc)) return CAST_TYPED_IN_SQL;
      }
      const fromText = remembering((t: string) => (utc ? new DuckDBTimestampTZValue(microsFromText(t, true)) : new DuckDBTimestampValue(microsFromText(t, false))));
      return {
        vectorType: utc ? TIMESTAMPTZ : TIMESTAMP,
        convert: (value) => {
          if (typeof value === 'string') return fromText(value);
          if (typeof value !== 'object') throw new Error(`Conversion Error: a ${typeof value} value for a timestamp column`);
          return value as unknown as DuckDBValue;
        },
        castInSql: false,
      };
    }
    default:
      // float (parsing through a double could round twice), boolean, date, binary, byte: SQL's cast.
      return rows.some((row) => row[index] !== null && typeof row[index] !== 'string') ? CAST_TYPED_IN_SQL : CAST_IN_SQL;
  }
}
