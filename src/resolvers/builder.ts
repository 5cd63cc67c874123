import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import type { ApiContext } from './context.ts';
import { parseDateTime } from './date-time.ts';

export const builder = new SchemaBuilder<{
  Context: ApiContext;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
  };
}>({
  defaultFieldNullability: false,
  plugins: [ComplexityPlugin],
  complexity: {
    // Fields declare their cost (src/server/operation-limits.ts checks the budget before execution,
    // with the variables of the request); a plain field costs 1 and a list without a declared size
    // multiplies its selection by 10. The plugin's own execution-time check stays off: the API
    // context is shared, and the check must run before any resolver does.
    defaultComplexity: 1,
    defaultListMultiplier: 10,
    disabled: true,
  },
});

builder.scalarType('DateTime', {
  description: 'An instant in time as an ISO-8601 string with a time-zone offset, e.g. "2026-11-24T15:04:05.123Z" (outputs are UTC).',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: (value) => parseDateTime(value),
});

builder.queryType({});
builder.subscriptionType({});
