/**
 * A request the services refuse because of what the client asked (a malformed or unknown symbol, a
 * limit or window out of bounds): the API reports it as BAD_USER_INPUT with `details` as extensions
 * (src/server/error-masking.ts), never as an internal error.
 */
export class InputError extends Error {
  override name = 'InputError';

  constructor(
    message: string,
    /** Which argument, which limit: passed to the client with the message. */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** A client's string inside an error message: shortened, control characters escaped (it may be anything). */
export function quoteForMessage(value: string, max = 24): string {
  const short = value.length > max ? `${value.slice(0, max)}…` : value;
  return JSON.stringify(short);
}
