import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createYoga, type Plugin } from 'graphql-yoga';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type pg from 'pg';
import { buildSchema } from '../resolvers/schema.ts';
import { AssetCatalog } from '../resolvers/assets.ts';
import { PriceFeed, LVC_CHANNEL } from '../resolvers/price-feed.ts';
import { PipelineFeed } from '../resolvers/pipeline-feed.ts';
import { CandleFeed, CANDLES_CHANNEL } from '../resolvers/candle-feed.ts';
import type { ApiContext } from '../resolvers/context.ts';
import { createDb, createPool } from './pool.ts';
import { ListenHub } from './listener.ts';
import { depthLimitRule } from './depth-limit.ts';
import { Metrics } from './metrics.ts';
import type { Logger } from './logger.ts';

export interface ApiOptions {
  /** Connection for queries (may be a read-only role: DATABASE_API_URL). */
  apiUrl: string;
  /** Direct, unpooled connection for LISTEN. */
  listenUrl: string;
  port: number;
  host?: string;
  logger: Logger;
  /** Extra routes served before GraphQL (dashboard, metrics). */
  routes?: Record<string, http.RequestListener>;
  staticDir?: string;
  /** The lake table of stock_ticks (LAKETS_DATA_DIR/lake/stock_ticks), for cross-tier reads. */
  lakeDir?: string;
  /** The database's state for /health (503 when not ok); without it /health only says the process is up. */
  health?: () => { ok: boolean } & Record<string, unknown>;
}

export interface ApiServer {
  url: string;
  port: number;
  server: http.Server;
  hub: ListenHub;
  pool: pg.Pool;
  context: ApiContext;
  metrics: Metrics;
  close(): Promise<void>;
}

export const MAX_QUERY_DEPTH = 8;

const depthLimit: Plugin = {
  onValidate({ addValidationRule }) {
    addValidationRule(depthLimitRule(MAX_QUERY_DEPTH));
  },
};

const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

function serveStatic(root: string, urlPath: string, res: http.ServerResponse): boolean {
  const rel = urlPath === '/' ? 'index.html' : decodeURIComponent(urlPath).replace(/^\/+/, '');
  const file = path.resolve(root, rel);
  if (!file.startsWith(path.resolve(root) + path.sep)) return false;
  const type = STATIC_TYPES[path.extname(file)];
  if (!type || !fs.existsSync(file) || !fs.statSync(file).isFile()) return false;
  res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' });
  fs.createReadStream(file).pipe(res);
  return true;
}

export async function startApi(options: ApiOptions): Promise<ApiServer> {
  const { logger } = options;
  const pool = createPool(options.apiUrl, { applicationName: 'lakets-api' });
  const db = createDb(pool);
  const hub = new ListenHub(options.listenUrl, logger, [LVC_CHANNEL, CANDLES_CHANNEL]);
  await hub.start();
  const context: ApiContext = {
    db,
    assets: new AssetCatalog(db),
    prices: new PriceFeed(db, hub, logger),
    pipeline: new PipelineFeed(db, logger),
    candles: new CandleFeed(db, hub, logger),
    ...(options.lakeDir ? { lakeDir: options.lakeDir } : {}),
  };

  const metrics = new Metrics(db, logger);
  const routes: Record<string, http.RequestListener> = { '/metrics': metrics.handler, ...options.routes };

  const yoga = createYoga({
    schema: buildSchema(),
    context: () => context,
    graphqlEndpoint: '/graphql',
    graphiql: { subscriptionsProtocol: 'WS', title: 'LakeTS Live' },
    maskedErrors: true,
    logging: false,
    plugins: [depthLimit],
  });

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/health') {
      const health = options.health?.() ?? { ok: true };
      return json(res, health.ok ? 200 : 503, { status: health.ok ? 'ok' : 'unavailable', ...health });
    }
    if (url.pathname === '/ready') {
      void pool.query('SELECT 1').then(
        () =>
          hub.connected
            ? json(res, 200, { status: 'ready' })
            : json(res, 503, { status: 'not ready', reason: 'listener reconnecting' }),
        (err: Error) => json(res, 503, { status: 'not ready', reason: err.message }),
      );
      return;
    }
    const route = routes[url.pathname];
    if (route) return route(req, res);
    if (options.staticDir && req.method === 'GET' && serveStatic(options.staticDir, url.pathname, res)) return;
    void yoga.handle(req, res);
  });

  // graphql-ws on the same port and path as HTTP, executing through yoga's envelop so both
  // transports share the schema, validation rules and error masking.
  const wss = new WebSocketServer({ server, path: '/graphql' });
  const wsServer = useServer(
    {
      execute: (args: any) => args.rootValue.execute(args),
      subscribe: (args: any) => args.rootValue.subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
        });
        let document;
        try {
          document = parse(payload.query);
        } catch (err) {
          return [err as any];
        }
        const args = {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length) return errors;
        return args;
      },
    },
    wss,
  );

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${options.host ?? '127.0.0.1'}:${port}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    server,
    hub,
    pool,
    context,
    metrics,
    close() {
      closing ??= (async () => {
        context.prices.close();
        context.pipeline.close();
        context.candles.close();
        await wsServer.dispose();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await hub.close();
        await pool.end();
      })();
      return closing;
    },
  };
}
