import SchemaBuilder from '@pothos/core';
import type { ApiContext } from './context.ts';

export const builder = new SchemaBuilder<{
  Context: ApiContext;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
  };
}>({ defaultFieldNullability: false });

builder.scalarType('DateTime', {
  description: 'An instant in time as an ISO-8601 string in UTC, e.g. "2026-11-24T15:04:05.123Z".',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: (value) => parseDateTime(value),
});

function parseDateTime(value: unknown): Date {
  if (typeof value !== 'string' && typeof value !== 'number') throw new TypeError('DateTime must be an ISO-8601 string');
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new TypeError(`"${String(value)}" is not a valid ISO-8601 date-time`);
  return date;
}

builder.queryType({});
builder.subscriptionType({});
