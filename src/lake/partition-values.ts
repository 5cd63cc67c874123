// Partition values turned into typed SQL constants. Spark does not store partition columns in the data
// files; the only source of truth is `add.partitionValues`, a map of serialized strings.
//
// Serialization (Delta protocol, "Partition Value Serialization"):
// - null, and the empty string for any type, mean NULL;
// - timestamp: `YYYY-MM-DD HH:MM:SS[.ffffff]`, an instant in UTC (some writers use ISO 8601 with a zone);
// - timestamp_ntz: the same form, a wall-clock value with no zone;
// - numbers, booleans, dates, decimals: their plain text forms, which DuckDB's casts accept.

import { duckdbTypeOf, type DeltaDecimalType, type DeltaPrimitiveTypeName } from './schema.ts';
import { quoteLiteral } from './sql.ts';

const TIMESTAMP_TEXT = /^(\d{4,}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?)(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/** A SQL expression of the column's DuckDB type holding the partition value (NULL included). */
export function partitionValueSql(
  value: string | null | undefined,
  type: DeltaPrimitiveTypeName | DeltaDecimalType,
  column: string,
): string {
  const duckdbType = duckdbTypeOf(type);
  if (value === null || value === undefined || value === '') return `CAST(NULL AS ${duckdbType})`;
  switch (type) {
    case 'string':
      return quoteLiteral(value);
    case 'binary':
      return `encode(${quoteLiteral(value)})`; // Spark serializes binary partition values as UTF-8 text
    case 'timestamp':
    case 'timestamp_ntz': {
      const match = TIMESTAMP_TEXT.exec(value);
      if (!match) throw new Error(`partition column '${column}': ${JSON.stringify(value)} is not a timestamp`);
      const [, date, time, zone] = match;
      if (type === 'timestamp_ntz') {
        if (zone !== undefined) throw new Error(`partition column '${column}': timestamp_ntz value ${JSON.stringify(value)} has a zone`);
        return `CAST(${quoteLiteral(`${date} ${time}`)} AS TIMESTAMP)`;
      }
      // A zone-less value is UTC; spelling the offset out keeps the session time zone out of it.
      const offset = zone === undefined || zone === 'Z' ? '+00' : zone;
      return `CAST(${quoteLiteral(`${date} ${time}${offset}`)} AS TIMESTAMPTZ)`;
    }
    default:
      return `CAST(${quoteLiteral(value)} AS ${duckdbType})`;
  }
}
