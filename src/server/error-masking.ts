import { GraphQLError } from 'graphql';
import { maskError } from 'graphql-yoga';
import { InputError } from '../services/input-error.ts';

/**
 * What a client sees of an error raised below the API. Deliberate GraphQL errors pass as they are;
 * a refused request (InputError) is BAD_USER_INPUT with its details; a statement stopped by
 * statement_timeout is QUERY_TIMEOUT (the client's to narrow); a wait for a pooled connection that
 * ran out is SERVER_BUSY; anything else is masked ("Unexpected error.") and logged with the request.
 */
export function publicErrorMasker(statementTimeoutMs: number) {
  return (error: unknown, message: string, isDev?: boolean): Error => {
    const original = error instanceof GraphQLError ? error.originalError : error;
    if (original instanceof InputError) {
      const located = error instanceof GraphQLError ? error : undefined;
      const refused = new GraphQLError(original.message, {
        ...(located ? { nodes: located.nodes, source: located.source, positions: located.positions, path: located.path } : {}),
        extensions: { code: 'BAD_USER_INPUT', ...original.details },
      });
      // A compiled query (graphql-jit) locates its errors by `locations` alone, without nodes:
      // hot-operations.ts turns them back into source positions after masking.
      if (!refused.locations && located?.locations) (refused as { locations?: unknown }).locations = located.locations;
      return refused;
    }
    if (original && (original as { code?: string }).code === '57014' && /statement timeout/.test((original as Error).message)) {
      return new GraphQLError(`the query ran longer than ${statementTimeoutMs} ms and was stopped; ask for less (limit, narrower from/to)`, {
        extensions: { code: 'QUERY_TIMEOUT' },
      });
    }
    // pg-pool's wait for a free client, or pg's own connect timing out within that budget.
    if (original instanceof Error && /timeout exceeded when trying to connect|terminated due to connection timeout/.test(original.message)) {
      return new GraphQLError('the server is busy with other reads; retry shortly', { extensions: { code: 'SERVER_BUSY' } });
    }
    return maskError(error, message, isDev);
  };
}

/** An error that is not a deliberate refusal (ours or graphql-js's) is a bug or an outage: it is logged. */
export function isUnexpected(error: unknown): boolean {
  let e: unknown = error;
  while (e instanceof GraphQLError) {
    if (!e.originalError) return false;
    e = e.originalError;
  }
  return !(e instanceof InputError);
}
