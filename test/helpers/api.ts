import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { startApi, type ApiOptions, type RunningApi } from '../../src/main.ts';
import { createLogger } from '../../src/logger.ts';
import { DEFAULT_API_STATEMENT_TIMEOUT_MS } from '../../src/config.ts';

/** An API on a free port; no authentication and the default origins unless `extra` says otherwise. */
export async function startTestApi(url: string, extra: Partial<ApiOptions> = {}): Promise<RunningApi> {
  return startApi({
    apiUrl: url,
    listenUrl: url,
    port: 0,
    logger: createLogger('silent'),
    security: { apiTokens: [], allowAnonymous: false },
    statementTimeoutMs: DEFAULT_API_STATEMENT_TIMEOUT_MS,
    ...extra,
  });
}

export interface GqlResponse<T = any> {
  status: number;
  data?: T;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

export async function gql<T = any>(
  baseUrl: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<GqlResponse<T>> {
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await res.json()) as Omit<GqlResponse<T>, 'status'>;
  return { status: res.status, ...body };
}

/** A real graphql-ws client over a real WebSocket. */
export function wsClient(baseUrl: string, connectionParams?: Record<string, unknown>): Client {
  return createClient({
    url: baseUrl.replace(/^http/, 'ws') + '/graphql',
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    ...(connectionParams ? { connectionParams } : {}),
  });
}

/** Subscribes and collects every `next` payload until disposed. */
export function collect<T = any>(client: Client, query: string, variables?: Record<string, unknown>) {
  const items: T[] = [];
  const errors: unknown[] = [];
  const dispose = client.subscribe<T>(
    { query, variables },
    {
      next: (v) => {
        if (v.errors) errors.push(v.errors);
        if (v.data) items.push(v.data as T);
      },
      error: (e) => errors.push(e),
      complete: () => undefined,
    },
  );
  return { items, errors, dispose };
}
