import crypto from 'node:crypto';
import { SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { collect, gql, wsClient } from '../helpers/api.ts';
import type { RunningApi } from '../../src/main.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { assertSafeExposure, defaultOrigins, ExposureError, isLoopbackHost } from '../../src/server/exposure.ts';

/**
 * With LAKETS_API_TOKENS or a JWT key configured, every data request needs a bearer credential —
 * over HTTP, SSE, graphql-ws and /metrics — while /health, /ready and the pages that hold no data
 * stay open. Binding beyond loopback without authentication is refused.
 */

const TOKEN = 'test-token-0123456789abcdef';
const JWT_SECRET = 'a-jwt-secret-of-at-least-32-characters!!';
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });

const ctx = useTestContext('api_auth');
let rsaApi: RunningApi;

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '1 second', 'NVDA', 140.5, 3)`);
  await ctx.startApi({
    security: { apiTokens: [TOKEN, 'another-token-abcdefghijkl'], jwt: { secret: JWT_SECRET, issuer: 'lakets-tests', audience: 'lakets' }, allowAnonymous: false },
  });
  rsaApi = await ctx.startApi({
    security: { apiTokens: [], jwt: { publicKey: rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString() }, allowAnonymous: false },
  });
});

const query = `{ latestPrice(symbol: "NVDA") { price } }`;
const bearer = (credential: string) => ({ authorization: `Bearer ${credential}` });

function hs256(claims: Record<string, unknown> = {}, expiresIn = '5m', secret = JWT_SECRET) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('lakets-tests')
    .setAudience('lakets')
    .setSubject('alice')
    .setIssuedAt()
    .setExpirationTime(expiresIn)
    .sign(new TextEncoder().encode(secret));
}

describe('bearer tokens and JWT over HTTP', () => {
  it('refuses a data request without a valid credential with 401, and serves it with one', async () => {
    for (const headers of [{}, bearer('wrong-token-0123456789abcdef'), { authorization: TOKEN }, bearer(''), { authorization: 'Basic dXNlcjpwYXNz' }]) {
      const res = await gql(ctx.api.url, query, undefined, headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect(res.data).toBeUndefined();
    }
    const ok = await gql(ctx.api.url, query, undefined, bearer(TOKEN));
    expect(ok.status).toBe(200);
    expect(ok.data.latestPrice.price).toBe(140.5);
    expect((await gql(ctx.api.url, query, undefined, { authorization: 'bearer another-token-abcdefghijkl' })).status).toBe(200);
  });

  it('accepts a JWT signed with the secret, with the right issuer and audience, until it expires', async () => {
    expect((await gql(ctx.api.url, query, undefined, bearer(await hs256()))).status).toBe(200);
    expect((await gql(ctx.api.url, query, undefined, bearer(await hs256({}, '-1m')))).status).toBe(401);
    expect((await gql(ctx.api.url, query, undefined, bearer(await hs256({}, '5m', 'x'.repeat(40))))).status).toBe(401);
    const wrongAudience = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('lakets-tests')
      .setAudience('someone-else')
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(JWT_SECRET));
    expect((await gql(ctx.api.url, query, undefined, bearer(wrongAudience))).status).toBe(401);
    // "alg: none" is never accepted
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"iss":"lakets-tests","aud":"lakets"}').toString('base64url')}.`;
    expect((await gql(ctx.api.url, query, undefined, bearer(none))).status).toBe(401);
  });

  it('accepts RS256 JWTs with a configured public key, and refuses HS256 made from that public key', async () => {
    const good = await new SignJWT({}).setProtectedHeader({ alg: 'RS256' }).setExpirationTime('5m').sign(rsa.privateKey);
    expect((await gql(rsaApi.url, query, undefined, bearer(good))).status).toBe(200);
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const confused = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('5m').sign(new TextEncoder().encode(pem));
    expect((await gql(rsaApi.url, query, undefined, bearer(confused))).status).toBe(401);
  });

  it('guards SSE subscriptions and /metrics; leaves /health, /ready, GraphiQL’s page and preflights open', async () => {
    const sse = `${ctx.api.url}/graphql?query=${encodeURIComponent('subscription { priceUpdated(symbols: ["NVDA"]) { price } }')}`;
    expect((await fetch(sse, { headers: { accept: 'text/event-stream' } })).status).toBe(401);
    const ctrl = new AbortController();
    const open = await fetch(sse, { headers: { accept: 'text/event-stream', ...bearer(TOKEN) }, signal: ctrl.signal });
    expect(open.status).toBe(200);
    ctrl.abort();

    const metrics = await fetch(`${ctx.api.url}/metrics`);
    expect(metrics.status).toBe(401);
    expect(metrics.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await fetch(`${ctx.api.url}/metrics`, { headers: bearer(TOKEN) })).status).toBe(200);

    expect((await fetch(`${ctx.api.url}/health`)).status).toBe(200);
    expect((await fetch(`${ctx.api.url}/ready`)).status).toBe(200);
    const page = await fetch(`${ctx.api.url}/graphql`, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/graphiql/i);
    // a GET with a query but no html accept is a data request
    expect((await fetch(`${ctx.api.url}/graphql?query=${encodeURIComponent(query)}`)).status).toBe(401);
    const preflight = await fetch(`${ctx.api.url}/graphql`, {
      method: 'OPTIONS',
      headers: { origin: `http://127.0.0.1:${ctx.api.port}`, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.status).toBeLessThan(300);
  });
});

describe('bearer credentials over graphql-ws', () => {
  it('closes a connection without a valid authorization with 4403, and serves one with it', async () => {
    for (const params of [undefined, { authorization: 'Bearer nope-nope-nope-nope-nope' }, { authorization: TOKEN }]) {
      const client = wsClient(ctx.api.url, params);
      const sub = collect(client, query);
      await waitFor(() => sub.errors.length > 0, 10_000, 'the refusal');
      expect((sub.errors[0] as { code?: number }).code, JSON.stringify(params)).toBe(4403);
      expect(sub.items).toEqual([]);
      await client.dispose();
    }
    for (const params of [{ authorization: `Bearer ${TOKEN}` }, { Authorization: `Bearer ${await hs256()}` }]) {
      const client = wsClient(ctx.api.url, params);
      const sub = collect<{ latestPrice: { price: number } }>(client, query);
      await waitFor(() => sub.items.length > 0 || sub.errors.length > 0, 10_000, 'the answer');
      expect(sub.errors).toEqual([]);
      expect(sub.items[0]!.latestPrice.price).toBe(140.5);
      await client.dispose();
    }
  });
});

describe('exposure', () => {
  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '192.168.1.5', '10.0.0.1', 'example.com', '::ffff:10.0.0.1']) expect(isLoopbackHost(h), h).toBe(false);
  });

  it('refuses a non-loopback HOST without tokens or JWT unless anonymous access is explicit', async () => {
    const none = { apiTokens: [], allowAnonymous: false };
    expect(() => assertSafeExposure({ host: '127.0.0.1', security: none })).not.toThrow();
    expect(() => assertSafeExposure({ host: '0.0.0.0', security: none })).toThrow(ExposureError);
    expect(() => assertSafeExposure({ host: '0.0.0.0', security: none })).toThrow(/refusing to serve HOST=0\.0\.0\.0 without authentication/);
    expect(() => assertSafeExposure({ host: '0.0.0.0', security: { ...none, apiTokens: [TOKEN] } })).not.toThrow();
    expect(() => assertSafeExposure({ host: '0.0.0.0', security: { ...none, jwt: { secret: JWT_SECRET } } })).not.toThrow();
    expect(() => assertSafeExposure({ host: '0.0.0.0', security: { ...none, allowAnonymous: true } })).not.toThrow();
    // startApi calls it before it opens anything
    await expect(ctx.startApi({ host: '0.0.0.0', security: none })).rejects.toThrow(ExposureError);
  });

  it('reads the security settings from the environment, refusing weak or contradictory ones', () => {
    const base = { LAKETS_PROFILE: 'demo' };
    const cfg = loadConfig({
      ...base,
      LAKETS_API_TOKENS: `${TOKEN}, another-token-abcdefghijkl`,
      LAKETS_JWT_SECRET: JWT_SECRET,
      LAKETS_JWT_ISSUER: 'me',
      LAKETS_CORS_ORIGINS: 'https://dash.example.com, http://localhost:5173/',
      LAKETS_ALLOW_ANONYMOUS: 'false',
    });
    expect(cfg.security).toEqual({
      apiTokens: [TOKEN, 'another-token-abcdefghijkl'],
      jwt: { secret: JWT_SECRET, issuer: 'me' },
      corsOrigins: ['https://dash.example.com', 'http://localhost:5173'],
      allowAnonymous: false,
    });
    expect(cfg.apiStatementTimeoutMs).toBe(10_000);
    expect(() => loadConfig({ ...base, LAKETS_API_TOKENS: 'short' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, LAKETS_JWT_SECRET: 'short' })).toThrow(/at least 32/);
    expect(() => loadConfig({ ...base, LAKETS_JWT_SECRET: JWT_SECRET, LAKETS_JWT_PUBLIC_KEY: 'x' })).toThrow(/not both/);
    expect(() => loadConfig({ ...base, LAKETS_CORS_ORIGINS: 'dash.example.com' })).toThrow(/not an origin/);
    expect(() => loadConfig({ ...base, LAKETS_CORS_ORIGINS: 'https://dash.example.com/app' })).toThrow(/not an origin/);
    expect(() => loadConfig({ ...base, LAKETS_ALLOW_ANONYMOUS: 'maybe' })).toThrow(/true" or "false/);
  });

  it('allows the server’s own origins by default', () => {
    expect(defaultOrigins('127.0.0.1', 4000)).toEqual(['http://127.0.0.1:4000', 'http://localhost:4000', 'http://[::1]:4000']);
    expect(defaultOrigins('10.0.0.5', 4000)).toEqual(['http://10.0.0.5:4000']);
    expect(defaultOrigins('0.0.0.0', 4000)).toEqual(['http://127.0.0.1:4000', 'http://localhost:4000', 'http://[::1]:4000']);
  });
});
