import SchemaBuilder from '@pothos/core';
import ComplexityPlugin from '@pothos/plugin-complexity';
import type { Services } from '../services/services.ts';

/** One request's context: the process's services plus who asked and whether they are still there. */
export interface ApiContext {
  services: Services;
  requestId: string;
  /** Aborted when the client goes away (HTTP request closed, SSE or WebSocket operation ended). */
  signal: AbortSignal;
}

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

builder.queryType({});
builder.subscriptionType({});
