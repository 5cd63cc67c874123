// The dashboard's only data source: the public GraphQL API over graphql-ws (one socket for
// queries and subscriptions). The connection retries forever; the dashboard is told about every
// state change so it can show "reconnecting…" and resubscribe once the server is back. When the
// server requires authentication, the token kept in localStorage is sent in connectionParams, and a
// refusal (close code 4403) is reported as 'unauthorized' so the page can ask for one.
import { createClient } from 'graphql-ws';

const TOKEN_KEY = 'lakets.token';

export function storedToken() {
  return localStorage.getItem(TOKEN_KEY) ?? '';
}

export function storeToken(token) {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/**
 * @param {{ url: string, onState: (state: 'connecting'|'live'|'reconnecting'|'unauthorized', info?: object) => void }} options
 * @returns {{ client: () => import('graphql-ws').Client }}
 */
export function connect({ url, onState }) {
  let everConnected = false;
  let attempts = 0;
  let current;

  const make = () => {
    current = createClient({
      url,
      lazy: false,
      retryAttempts: Infinity,
      shouldRetry: () => true,
      // quick first retries, then at most every ~3 s: the server usually comes back within seconds
      retryWait: (retries) => new Promise((r) => setTimeout(r, Math.min(400 * 2 ** retries, 3000) + Math.random() * 250)),
      keepAlive: 5_000,
      // Read at every (re)connection, so a token entered after a refusal is used by the next retry.
      connectionParams: () => {
        const token = storedToken();
        return token ? { authorization: `Bearer ${token}` } : {};
      },
      on: {
        connecting: () => {
          attempts++;
          onState(everConnected ? 'reconnecting' : 'connecting', { attempts });
        },
        connected: () => {
          everConnected = true;
          attempts = 0;
          onState('live');
        },
        closed: (event) => {
          if (event?.code === 4403) onState('unauthorized', { attempts, hadToken: Boolean(storedToken()) });
          else if (everConnected) onState('reconnecting', { attempts, code: event?.code, reason: event?.reason });
        },
      },
      // A close code graphql-ws treats as fatal (e.g. 4500 while the server restarts): start over
      // with a fresh client instead of giving up.
      onNonLazyError: (err) => {
        console.warn('graphql-ws gave up, starting a new client', err);
        onState(everConnected ? 'reconnecting' : 'connecting', { attempts });
        const dead = current;
        setTimeout(() => {
          void dead.dispose();
          make();
        }, 2_000);
      },
    });
  };
  make();
  return { client: () => current };
}

/** One query (or mutation) over the socket; resolves with `{ data, errors }`. */
export function request(client, query, variables) {
  return new Promise((resolve, reject) => {
    let result = { data: null, errors: [{ message: 'no result' }] };
    client.subscribe(
      { query, variables },
      {
        next: (value) => (result = value),
        error: (err) => reject(err instanceof Error ? err : new Error(describeError(err))),
        complete: () => resolve(result),
      },
    );
  });
}

/** Subscribes; `onData(data, errors)` for every payload. Returns a dispose function. */
export function subscribe(client, query, variables, onData, onError) {
  return client.subscribe(
    { query, variables },
    {
      next: (value) => onData(value.data ?? null, value.errors ?? null),
      error: (err) => onError?.(err),
      complete: () => undefined,
    },
  );
}

export function describeError(err) {
  if (!err) return 'unknown error';
  if (Array.isArray(err)) return err.map((e) => e.message ?? String(e)).join('; ');
  if (err.message) return err.message;
  if (typeof err.code === 'number') return `socket closed (${err.code}${err.reason ? ` ${err.reason}` : ''})`;
  return String(err);
}
