// One server of the `api` benchmark, run as a child process of bench/api.ts so that its CPU is its
// own (process.cpuUsage) and the load generator's is not counted against it. Usage (forked with an
// IPC channel): api-servers.ts <hello | rawpg | project | postgraphile> <database url>. It sends
// { port } once listening, answers { cpu } to 'cpu', and exits on 'stop'.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';

type Kind = 'hello' | 'rawpg' | 'project' | 'postgraphile';

/** The SQL every database-backed contender runs for latestPrices (the raw server prepares it). */
export const LATEST_PRICES_SQL = 'SELECT symbol, price, volume, time FROM _lvc_stock_ticks WHERE symbol = ANY($1::text[]) ORDER BY symbol';

/** PostGraphile's view of the same table: two functions in a schema of their own (see bench/api.ts). */
export const POSTGRAPHILE_SCHEMA = 'postgraphile_bench';

async function listen(server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** The ceiling of any yoga server here: yoga with a one-field schema, nothing else. */
async function hello(): Promise<number> {
  const { createSchema, createYoga } = await import('graphql-yoga');
  const yoga = createYoga({
    schema: createSchema({ typeDefs: 'type Query { hello: String! }', resolvers: { Query: { hello: () => 'world' } } }),
    logging: false,
    graphiql: false,
    landingPage: false,
  });
  return listen(http.createServer(yoga));
}

/** The same SQL through raw node-pg: a prepared statement, JSON in and out, no GraphQL. */
async function rawpg(url: string): Promise<number> {
  const pool = new pg.Pool({ connectionString: url, max: 6 });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { variables?: { symbols?: string[]; symbol?: string } };
      const symbols = body.variables?.symbols ?? [body.variables?.symbol ?? 'AAPL'];
      pool.query({ name: 'latest_prices', text: LATEST_PRICES_SQL, values: [symbols] }).then(
        ({ rows }) => {
          res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
          res.end(JSON.stringify({ data: body.variables?.symbols ? { latestPrices: rows } : { latestPrice: rows[0] ?? null } }));
        },
        (err: Error) => {
          res.writeHead(500);
          res.end(err.message);
        },
      );
    });
  });
  return listen(server);
}

/** The project's API exactly as src/main.ts assembles it (no authentication, loopback). */
async function project(url: string): Promise<number> {
  const { startApi } = await import('../src/main.ts');
  const { createLogger } = await import('../src/logger.ts');
  const { DEFAULT_API_STATEMENT_TIMEOUT_MS } = await import('../src/config.ts');
  const api = await startApi({
    apiUrl: url,
    listenUrl: url,
    port: 0,
    logger: createLogger('warn'),
    security: { apiTokens: [], allowAnonymous: false },
    statementTimeoutMs: DEFAULT_API_STATEMENT_TIMEOUT_MS,
  });
  process.on('message', (m) => {
    if (m === 'stats') console.log('fences', api.hub.fencesSent, 'reads', JSON.stringify(api.services.prices.stats));
  });
  return api.port;
}

/** PostGraphile 5 (amber preset, grafserv on node:http) over the same table through POSTGRAPHILE_SCHEMA. */
async function postgraphile(url: string): Promise<number> {
  const { postgraphile: make } = await import('postgraphile');
  const { PostGraphileAmberPreset } = await import('postgraphile/presets/amber');
  const { makePgService } = await import('postgraphile/adaptors/pg');
  const { grafserv } = await import('postgraphile/grafserv/node');
  const pgl = make({
    extends: [PostGraphileAmberPreset],
    pgServices: [makePgService({ connectionString: url, schemas: [POSTGRAPHILE_SCHEMA], poolConfig: { max: 6 } })],
    grafserv: { graphqlPath: '/graphql', graphiql: false, watch: false },
    grafast: { explain: false },
  });
  const serv = pgl.createServ(grafserv);
  const server = http.createServer();
  await serv.addTo(server);
  return listen(server);
}

if (import.meta.main) {
  const [kind, url] = process.argv.slice(2) as [Kind, string];
  const starters: Record<Kind, (url: string) => Promise<number>> = { hello, rawpg, project, postgraphile };
  const port = await starters[kind](url);
  process.on('message', (message) => {
    if (message === 'cpu') process.send!({ cpu: process.cpuUsage() });
    if (message === 'stop') process.exit(0);
  });
  process.on('disconnect', () => process.exit(0));
  process.send!({ port });
}
