import { GraphQLError } from 'graphql';

/** A client mistake: reported with code BAD_USER_INPUT, never masked, never a 500. */
export function badInput(message: string, extra: Record<string, unknown> = {}): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT', ...extra } });
}
