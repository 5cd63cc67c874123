import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import WebSocket from 'ws';
import { auditServer } from 'graphql-http';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { gql } from '../helpers/api.ts';
import { REPO_ROOT } from '../helpers/processes.ts';
import { vendorRoutes } from '../../demo/live/vendor-routes.ts';

/**
 * Every HTTP path of the server against malformed and hostile requests: each answers 4xx (or a
 * logged 500 for a fault of ours), and the process keeps serving another client's latestPrice.
 */

const ctx = useTestContext('attacks_http');
const logLines: Array<Record<string, unknown>> = [];

const logSink = new Writable({
  write(chunk, _encoding, done) {
    for (const line of String(chunk).split('\n')) if (line.trim()) logLines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  },
});

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '1 second', 'MSFT', 415.25, 3)`);
  await ctx.startApi({
    logger: pino({ level: 'info', base: undefined }, logSink),
    staticDir: path.join(REPO_ROOT, 'demo', 'live', 'public'),
    routes: {
      ...vendorRoutes(),
      '/test-throws': () => {
        throw new Error('a handler bug');
      },
    },
  });
});

async function stillServing(): Promise<void> {
  const res = await gql(ctx.api.url, `{ latestPrice(symbol: "MSFT") { price } }`);
  expect(res.data?.latestPrice?.price).toBe(415.25);
}

/** One raw HTTP exchange: the request line is sent exactly as given (fetch would normalise it). */
function rawRequest(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(ctx.api.port, '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.on('data', (d) => (out += d.toString()));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    setTimeout(() => socket.end(), 2000);
  });
}

describe('static files and plain routes', () => {
  it('answers malformed percent-encoding with 400 instead of exiting', async () => {
    for (const p of ['/%', '/%E0%A4%A', '/app.js%', '/%00', '/a%2']) {
      const reply = await rawRequest(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(reply, p).toMatch(/^HTTP\/1\.1 400 /);
    }
    await stillServing();
  });

  it('never serves a file outside the dashboard folder', async () => {
    for (const p of ['/../package.json', '/..%2f..%2fpackage.json', '/%2e%2e/package.json', '/vendor/../../package.json']) {
      const reply = await rawRequest(`GET ${p} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`);
      expect(reply, p).toMatch(/^HTTP\/1\.1 404 /);
      expect(reply).not.toContain('"lakets-live"');
    }
    expect((await fetch(`${ctx.api.url}/`)).status).toBe(200);
    expect((await fetch(`${ctx.api.url}/vendor/lightweight-charts.js`, { method: 'POST' })).status).toBe(405);
  });

  it('answers 500 with a request id, and logs it, when a handler throws; the process serves on', async () => {
    const res = await fetch(`${ctx.api.url}/test-throws`);
    expect(res.status).toBe(500);
    const requestId = res.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(await res.json()).toEqual({ error: 'internal error', requestId });
    const line = logLines.find((l) => l.requestId === requestId);
    expect(line?.msg).toBe('unexpected error while handling a request');
    expect(JSON.stringify(line)).toContain('a handler bug');
    await stillServing();
  });

  it('keeps /health and /ready open and their answers free of internals', async () => {
    expect(await (await fetch(`${ctx.api.url}/health`)).json()).toEqual({ status: 'ok' });
    expect(await (await fetch(`${ctx.api.url}/ready`)).json()).toEqual({ status: 'ready' });
  });
});

describe('GraphQL over HTTP', () => {
  it('refuses a body over the limit with 413 without reading it all', async () => {
    const big = JSON.stringify({ query: `{ latestPrice(symbol: "MSFT") { price } }`, variables: { pad: 'x'.repeat(200_000) } });
    const res = await fetch(`${ctx.api.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(res.status).toBe(413);
    expect((await res.json()).errors[0].extensions.code).toBe('BAD_USER_INPUT');
    // the same without a Content-Length (chunked): cut off while streaming
    const chunked = await rawRequest(
      `POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
        `${(150_000).toString(16)}\r\n${'x'.repeat(150_000)}\r\n0\r\n\r\n`,
    );
    expect(chunked).toMatch(/^HTTP\/1\.1 413 /);
    await stillServing();
  });

  it('answers malformed JSON, wrong content types and missing queries with 4xx', async () => {
    const bodies: Array<[string, string]> = [
      ['application/json', '{"query": '],
      ['application/json', '[]'],
      ['application/json', '{"query": 42}'],
      ['application/json', '{}'],
      ['text/plain', 'query { __typename }'],
    ];
    for (const [type, body] of bodies) {
      const res = await fetch(`${ctx.api.url}/graphql`, { method: 'POST', headers: { 'content-type': type, accept: 'application/graphql-response+json' }, body });
      expect(res.status, body).toBeGreaterThanOrEqual(400);
      expect(res.status, body).toBeLessThan(500);
    }
    await stillServing();
  });

  it('passes the GraphQL-over-HTTP audits every server MUST pass', async () => {
    const results = await auditServer({ url: `${ctx.api.url}/graphql` });
    const failed = results.flatMap((r) => (r.status === 'error' ? [`${r.id} ${r.name}: ${r.reason}`] : []));
    expect(failed).toEqual([]);
  });

  it('masks internal errors, and logs them with the request id', async () => {
    await ctx.db.query('ALTER FUNCTION lakets.show_rollup_dag() RENAME TO show_rollup_dag_away');
    try {
      const res = await fetch(`${ctx.api.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ watermarks { rollup } }' }),
      });
      const body = (await res.json()) as { errors: Array<{ message: string; extensions: { code: string } }> };
      expect(body.errors[0]!.extensions.code).toBe('INTERNAL_SERVER_ERROR');
      expect(body.errors[0]!.message).toBe('Unexpected error.');
      const requestId = res.headers.get('x-request-id');
      await waitFor(() => logLines.some((l) => l.requestId === requestId), 5_000, `the log line in ${JSON.stringify(logLines.map((l) => [l.msg, l.requestId]))} for ${requestId}`);
      const line = logLines.find((l) => l.requestId === requestId)!;
      expect(line.msg).toBe('internal error in a GraphQL operation');
      expect(JSON.stringify(line.err)).toContain('show_rollup_dag');
    } finally {
      await ctx.db.query('ALTER FUNCTION lakets.show_rollup_dag_away() RENAME TO show_rollup_dag');
    }
  });

  it('answers a refused argument with BAD_USER_INPUT at its field, and logs no internal error for it', async () => {
    const res = await fetch(`${ctx.api.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ ticks(symbol: "NOPE") { price } }' }),
    });
    const body = (await res.json()) as { errors: Array<{ message: string; path: string[]; locations: unknown[]; extensions: Record<string, unknown> }> };
    expect(body.errors[0]).toMatchObject({
      message: 'unknown symbol "NOPE"',
      path: ['ticks'],
      locations: [{ line: 1, column: 3 }],
      extensions: { code: 'BAD_USER_INPUT', argument: 'symbol' },
    });
    // The request's log lines, if any, are not internal errors.
    const requestId = res.headers.get('x-request-id');
    await stillServing();
    expect(logLines.filter((l) => l.requestId === requestId && l.msg === 'internal error in a GraphQL operation')).toEqual([]);
  });

  it('shows a failed job as its kind, not its message', async () => {
    await ctx.db.query(
      `INSERT INTO lakets.job_runs (job, finished_at, status, detail)
       VALUES ('tiering', clock_timestamp(), 'failed', '{"error":"connect ECONNREFUSED 10.1.2.3:5432 for user admin secret=hunter2"}')`,
    );
    const res = await gql(ctx.api.url, `{ pipeline { jobs { job lastStatus lastError } } }`);
    const tiering = res.data.pipeline.jobs.find((j: { job: string }) => j.job === 'tiering');
    expect(tiering.lastError).toBe('failed: database unavailable (details in the server log)');
    expect(JSON.stringify(res)).not.toMatch(/10\.1\.2\.3|hunter2/);
  });
});

describe('browser origins', () => {
  it('allows the server’s own origins, and refuses others on HTTP and WebSocket', async () => {
    const own = `http://127.0.0.1:${ctx.api.port}`;
    const preflight = await fetch(`${ctx.api.url}/graphql`, {
      method: 'OPTIONS',
      headers: { origin: own, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,authorization' },
    });
    expect(preflight.status).toBeLessThan(300);
    expect(preflight.headers.get('access-control-allow-origin')).toBe(own);
    const post = await fetch(`${ctx.api.url}/graphql`, {
      method: 'POST',
      headers: { origin: `http://localhost:${ctx.api.port}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ __typename }' }),
    });
    expect(post.status).toBe(200);
    expect(post.headers.get('access-control-allow-origin')).toBe(`http://localhost:${ctx.api.port}`);

    for (const origin of ['http://evil.example', `http://127.0.0.1:${ctx.api.port + 1}`, 'null']) {
      const res = await fetch(`${ctx.api.url}/graphql`, {
        method: 'POST',
        headers: { origin, 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      expect(res.status, origin).toBe(403);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
    }

    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${ctx.api.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', { origin: 'http://evil.example' });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => resolve(101));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(403);
    const okStatus = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${ctx.api.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws', { origin: `http://127.0.0.1:${ctx.api.port}` });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => {
        ws.close();
        resolve(101);
      });
    });
    expect(okStatus).toBe(101);
    await stillServing();
  });

  it('answers only to loopback host names on a loopback bind (no DNS rebinding)', async () => {
    for (const host of ['evil.example', `evil.example:${ctx.api.port}`, '10.0.0.1']) {
      const reply = await rawRequest(`GET /graphql?query=%7B__typename%7D HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(reply, host).toMatch(/^HTTP\/1\.1 421 /);
    }
    for (const host of [`127.0.0.1:${ctx.api.port}`, `localhost:${ctx.api.port}`, 'localhost']) {
      const reply = await rawRequest(`GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(reply, host).toMatch(/^HTTP\/1\.1 200 /);
    }
    const ws = await rawRequest(
      `GET /graphql HTTP/1.1\r\nHost: evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n`,
    );
    expect(ws).toMatch(/^HTTP\/1\.1 403 /);
  });

  it('refuses oversized WebSocket messages by closing that socket only', async () => {
    const closed = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${ctx.api.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
      ws.on('open', () => ws.send('x'.repeat(200_000)));
      ws.on('close', (code) => resolve(code));
      ws.on('error', () => undefined);
    });
    expect(closed).toBe(1009); // message too big
    await stillServing();
  });
});

describe('/metrics', () => {
  it('answers 20 concurrent scrapes from one shared read of the pipeline status', async () => {
    const bodies = await Promise.all(Array.from({ length: 20 }, async () => {
      const res = await fetch(`${ctx.api.url}/metrics`);
      expect(res.status).toBe(200);
      return res.text();
    }));
    const ticks = new Set(bodies.map((b) => /^lakets_resident_rows (\S+)$/m.exec(b)?.[1]));
    expect(ticks.size).toBe(1);
    await stillServing();
  });
});
