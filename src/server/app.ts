import crypto from 'node:crypto';
import type http from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga, useErrorHandler, useExecutionCancellation, shouldRenderGraphiQL } from 'graphql-yoga';
import { GraphQLError } from 'graphql';
import type { SecurityConfig } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { ApiContext } from '../resolvers/builder.ts';
import { buildSchema } from '../resolvers/schema.ts';
import type { Services } from '../services/services.ts';
import { Authenticator } from './auth.ts';
import { isUnexpected, publicErrorMasker } from './error-masking.ts';
import { assertSafeExposure, isLoopbackHost, isWildcardHost, OriginPolicy } from './exposure.ts';
import { GRAPHIQL_OPTIONS, renderGraphiQLOnce } from './graphiql.ts';
import { hotOperationsPlugins } from './hot-operations.ts';
import { sharedSubscriptionsPlugin } from './shared-subscriptions.ts';
import { attachGraphqlWs } from './graphql-ws.ts';
import { Metrics } from './metrics.ts';
import { openFilesLimit, webSocketCapacity } from './open-files.ts';
import { operationLimitsPlugin, OPERATION_LIMITS, type OperationLimits } from './operation-limits.ts';
import { BodyTooLargeError, readBody } from './request-body.ts';
import { serveStatic } from './static-files.ts';

/** What /ready checks, owned by whoever assembled the server: the API's database and the LISTEN connection. */
export interface Readiness {
  /** Resolves when the API's database answers a query. */
  pingDatabase(): Promise<unknown>;
  /** The LISTEN connection feeding the subscriptions is up. */
  listening(): boolean;
}

export interface ServerOptions {
  /** The running services every request reads through. */
  services: Services;
  readiness: Readiness;
  port: number;
  host?: string;
  logger: Logger;
  /** Extra routes served before GraphQL (dashboard's vendor files). Public: they must hold no data. */
  routes?: Record<string, http.RequestListener>;
  /** A folder of static files served at / (the dashboard). */
  staticDir?: string;
  /** Authentication and allowed origins. */
  security: SecurityConfig;
  /** statement_timeout of the API's sessions, for the message of a query it stopped. */
  statementTimeoutMs: number;
  /** Overrides of the operation limits (OPERATION_LIMITS). */
  limits?: Partial<OperationLimits>;
  /** The database's state for /health (503 when not ok); without it /health only says the process is up. */
  health?: () => { ok: boolean } & Record<string, unknown>;
}

export interface ApiServer {
  url: string;
  port: number;
  server: http.Server;
  metrics: Metrics;
  origins: OriginPolicy;
  /** Stops accepting requests and ends the open ones and every subscription (the services stay). */
  close(): Promise<void>;
}

export const MAX_QUERY_DEPTH = OPERATION_LIMITS.maxDepth;
/** A GraphQL request is a few kilobytes; this leaves room for long variable lists and nothing more. */
export const MAX_BODY_BYTES = 100 * 1024;
export const MAX_WS_OPERATIONS_PER_CONNECTION = 50;
const GRAPHQL_PATH = '/graphql';

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
  res.end(JSON.stringify(body));
}

function graphqlError(res: http.ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  json(res, status, { errors: [{ message, extensions: { code } }] }, headers);
}

export function newRequestId(): string {
  return crypto.randomUUID();
}

/**
 * The HTTP server of the API: GraphQL over HTTP, SSE and graphql-ws on one port (yoga), /health,
 * /ready, /metrics, the static files. It receives the running services and serves them; it opens
 * no database connection of its own.
 */
export async function startServer(options: ServerOptions): Promise<ApiServer> {
  const { logger, services, readiness } = options;
  const host = options.host ?? '127.0.0.1';
  const security = options.security;
  assertSafeExposure({ host, security });
  const auth = new Authenticator(security);
  const origins = new OriginPolicy(security.corsOrigins, host, options.port);
  const statementTimeoutMs = options.statementTimeoutMs;

  const metrics = new Metrics(() => services.pipeline.readNow(), logger);
  const limits: OperationLimits = { ...OPERATION_LIMITS, ...options.limits };
  const routes: Record<string, http.RequestListener> = { ...options.routes };

  const yoga = createYoga<{ requestId?: string; signal?: AbortSignal }, ApiContext>({
    schema: buildSchema(),
    context: (initial): ApiContext => ({
      services,
      requestId: initial.requestId ?? newRequestId(),
      signal: initial.signal ?? initial.request.signal,
    }),
    graphqlEndpoint: GRAPHQL_PATH,
    graphiql: GRAPHIQL_OPTIONS,
    renderGraphiQL: renderGraphiQLOnce,
    landingPage: false,
    multipart: false,
    // The body is read and bounded before yoga sees it (readBody, MAX_BODY_BYTES: 413 without
    // reading it all); yoga's own limit would pipe every body through one more stream.
    maxRequestBodySize: false,
    maskedErrors: { maskError: publicErrorMasker(statementTimeoutMs) },
    logging: {
      debug: () => undefined,
      info: () => undefined,
      warn: (...args: unknown[]) => logger.warn({ yoga: args.map(String) }, 'graphql-yoga warning'),
      // Yoga logs every error it masks, without the request: the error handler below logs them with it.
      error: (...args: unknown[]) => logger.debug({ yoga: args.map((a) => (a instanceof Error ? a.stack : String(a))) }, 'graphql-yoga error'),
    },
    cors: (request) => {
      const origin = request.headers.get('origin');
      if (!origin || !origins.allows(origin)) return false;
      return {
        origin: [origin],
        credentials: true,
        methods: ['GET', 'POST'],
        allowedHeaders: ['authorization', 'content-type', 'accept'],
        maxAge: 600,
      };
    },
    plugins: [
      operationLimitsPlugin(limits),
      useExecutionCancellation(),
      ...hotOperationsPlugins(logger),
      sharedSubscriptionsPlugin(),
      useErrorHandler(({ errors, context, phase }) => {
        // For execution errors envelop passes the execution arguments, whose contextValue is ours.
        const ctx = (phase === 'execution' ? (context as { contextValue?: unknown }).contextValue : context) as Partial<ApiContext>;
        for (const error of errors) {
          if (!isUnexpected(error)) continue;
          if (ctx.signal?.aborted) continue; // the client went away: its cancelled query is no error
          const original = error instanceof GraphQLError ? (error.originalError ?? error) : error;
          logger.error({ requestId: ctx.requestId, phase, err: original }, 'internal error in a GraphQL operation');
        }
      }),
    ],
  });

  const requireAuth = async (req: http.IncomingMessage, res: http.ServerResponse, plain = false): Promise<boolean> => {
    const result = await auth.verify(req.headers.authorization);
    if (result.ok) return true;
    const headers = { 'www-authenticate': 'Bearer realm="lakets"' };
    const message = `authentication required: send "Authorization: Bearer <token>" (${result.reason})`;
    if (plain) {
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', ...headers });
      res.end(message + '\n');
    } else {
      graphqlError(res, 401, 'UNAUTHENTICATED', message, headers);
    }
    return false;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse, requestId: string): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return json(res, 400, { error: 'malformed request URL' });
    }
    const path = url.pathname;
    if (!origins.allowsHost(req.headers.host)) return json(res, 421, { error: 'this server answers to loopback host names only' });
    if (path === '/health') {
      // Without a database probe /health only says the process is up.
      const health = options.health?.();
      if (!health) return json(res, 200, { status: 'ok' });
      return json(res, health.ok ? 200 : 503, { status: health.ok ? 'ok' : 'unavailable', ...health });
    }
    if (path === '/ready') {
      try {
        await readiness.pingDatabase();
      } catch (err) {
        logger.warn({ requestId, err: (err as Error).message }, 'readiness check: database not reachable');
        return json(res, 503, { status: 'not ready', reason: 'database not reachable' });
      }
      return readiness.listening() ? json(res, 200, { status: 'ready' }) : json(res, 503, { status: 'not ready', reason: 'listener reconnecting' });
    }
    if (path === '/metrics') {
      if (!(await requireAuth(req, res, true))) return;
      return metrics.handler(req, res);
    }
    const route = routes[path];
    if (route) return route(req, res);
    if (path === GRAPHQL_PATH || path === `${GRAPHQL_PATH}/`) {
      if (!origins.allows(req.headers.origin)) {
        return graphqlError(res, 403, 'FORBIDDEN', `origin ${JSON.stringify(req.headers.origin)} is not allowed (LAKETS_CORS_ORIGINS)`);
      }
      const method = req.method ?? 'GET';
      // The GraphiQL page holds no data: it loads without a token, and sends the one typed in its Headers tab.
      const graphiqlPage = shouldRenderGraphiQL({ method, headers: new Headers({ accept: String(req.headers.accept ?? '') }) } as Request);
      if (method !== 'OPTIONS' && !graphiqlPage && !(await requireAuth(req, res))) return;
      if (method === 'POST') {
        try {
          (req as http.IncomingMessage & { body?: Buffer }).body = await readBody(req, MAX_BODY_BYTES);
        } catch (err) {
          if (err instanceof BodyTooLargeError) {
            return graphqlError(res, 413, 'BAD_USER_INPUT', `request body larger than ${MAX_BODY_BYTES} bytes`, { connection: 'close' });
          }
          return; // the client went away mid-body: nobody to answer
        }
      }
      await yoga.handle(req, res, { requestId });
      return;
    }
    if (options.staticDir && (req.method === 'GET' || req.method === 'HEAD')) {
      const outcome = await serveStatic(options.staticDir, path, req, res);
      if (outcome === 'served') return;
      if (outcome === 'bad-request') return json(res, 400, { error: 'malformed URL path' });
    }
    return json(res, 404, { error: 'not found' });
  };

  const server = createServer((req, res) => {
    const requestId = newRequestId();
    res.setHeader('x-request-id', requestId);
    handle(req, res, requestId).catch((err: unknown) => {
      // Every path answers its own errors; this is the backstop for the unexpected: logged, 500, serving on.
      logger.error({ requestId, method: req.method, url: req.url?.slice(0, 200), err }, 'unexpected error while handling a request');
      json(res, 500, { error: 'internal error', requestId });
    });
  });

  // A request (headers and body) must arrive within these; responses (SSE streams) are not bound by them.
  server.headersTimeout = 15_000;
  server.requestTimeout = 30_000;

  const wsCapacity = webSocketCapacity(limits.maxWebSocketConnections, openFilesLimit());
  if (wsCapacity.lowered) {
    logger.warn(
      { openFiles: wsCapacity.openFiles, webSocketConnections: wsCapacity.cap, configured: limits.maxWebSocketConnections },
      'ulimit -n leaves room for fewer WebSocket connections than the cap; raise it (e.g. LimitNOFILE=65536 in a systemd unit) to serve more',
    );
  }
  const ws = attachGraphqlWs({
    server,
    path: GRAPHQL_PATH,
    yoga,
    auth,
    origins,
    logger,
    newRequestId,
    maxPayloadBytes: MAX_BODY_BYTES,
    maxOperationsPerConnection: MAX_WS_OPERATIONS_PER_CONNECTION,
    maxConnections: wsCapacity.cap,
  });

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, host, () => resolve());
    });
  } catch (err) {
    // e.g. the port is taken: leave nothing open behind the error
    await ws.dispose().catch((error: Error) => logger.debug({ err: error.message }, 'closing the WebSocket server after a failed listen failed'));
    throw err;
  }
  const port = (server.address() as AddressInfo).port;
  origins.bound(host, port);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (!isLoopbackHost(host)) {
    if (!auth.enabled) logger.warn({ host }, 'serving the network WITHOUT authentication (LAKETS_ALLOW_ANONYMOUS=true)');
    if (!security.corsOrigins && isWildcardHost(host)) {
      logger.warn({ origins: origins.origins }, 'browsers on other machines need their origin in LAKETS_CORS_ORIGINS');
    }
  }

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    server,
    metrics,
    origins,
    close() {
      closing ??= (async () => {
        await ws.dispose();
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closing;
    },
  };
}
