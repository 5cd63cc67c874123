import pg from 'pg';
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestContext, waitFor } from '../helpers/context.ts';
import { gql } from '../helpers/api.ts';
import type { RunningApi } from '../../src/main.ts';

/**
 * A client that goes away takes its database work with it: the running statement is cancelled
 * (pg_cancel_backend) when the HTTP request is aborted, the SSE stream closed, or the graphql-ws
 * operation completed or its socket closed. And no statement of the API runs longer than its
 * statement_timeout. A table lock held by the test keeps the API's query running for as long as
 * needed, so the only way it stops is being cancelled.
 */

const ctx = useTestContext('query_cancel');
let impatient: RunningApi;
let locker: pg.Client;

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
  await ctx.startApi();
  impatient = await ctx.startApi({ statementTimeoutMs: 300 });
  locker = new pg.Client({ connectionString: ctx.db.url });
  await locker.connect();
});
afterAll(async () => {
  await locker?.query('ROLLBACK').catch(() => undefined);
  await locker?.end();
});

const BLOCKED = `{ partitions(limit: 5) { name } }`;

/** API statements on lakets.chunks still running (blocked behind the test's lock). */
async function runningOnChunks(): Promise<number> {
  const { rows } = await ctx.db.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity
      WHERE datname = current_database() AND application_name LIKE 'lakets-api%' AND state = 'active' AND query LIKE '%lakets%chunks%'`,
  );
  return Number(rows[0]!.n);
}

async function withChunksLocked(work: () => Promise<void>): Promise<void> {
  await locker.query('BEGIN');
  await locker.query('LOCK TABLE lakets.chunks IN ACCESS EXCLUSIVE MODE');
  try {
    await work();
  } finally {
    await locker.query('ROLLBACK');
  }
}

describe('statement_timeout', () => {
  it('is set on every API session, both pools, whatever the role', async () => {
    for (const pool of [ctx.api.pool, ctx.api.bulkPool]) {
      const { rows } = await pool.query<{ statement_timeout: string }>('SHOW statement_timeout');
      expect(rows[0]!.statement_timeout).toBe('10s');
    }
    expect((await impatient.bulkPool.query<{ statement_timeout: string }>('SHOW statement_timeout')).rows[0]!.statement_timeout).toBe('300ms');
  });

  it('stops a statement that runs too long and says so to the client', async () => {
    await withChunksLocked(async () => {
      const res = await gql(impatient.url, BLOCKED);
      expect(res.errors?.[0]?.extensions?.code).toBe('QUERY_TIMEOUT');
      expect(res.errors?.[0]?.message).toMatch(/longer than 300 ms/);
      expect(await runningOnChunks()).toBe(0);
    });
  });
});

describe('bulk reads have connections of their own', () => {
  it('answers latestPrice while every bulk connection is busy, and refuses a bulk read that waits too long', async () => {
    const busy = await ctx.startApi({ acquireTimeoutMs: 300 });
    try {
      // An idle short connection exists already, as on a running server: opening one on a busy
      // machine could take longer than the 300 ms budget this test gives.
      expect((await gql(busy.url, `{ latestPrices { symbol } }`)).errors).toBeUndefined();
      await withChunksLocked(async () => {
        // both bulk connections wait on the lock (their clients are cut off when the server closes)
        const blocked = [gql(busy.url, BLOCKED).catch(() => null), gql(busy.url, BLOCKED).catch(() => null)];
        await waitFor(async () => (await runningOnChunks()) === 2, 10_000, 'both bulk connections blocked');
        const price = await gql(busy.url, `{ latestPrices { symbol } }`);
        expect(price.errors).toBeUndefined();
        const third = await gql(busy.url, BLOCKED);
        expect(third.errors?.[0]?.extensions?.code).toBe('SERVER_BUSY');
        await busy.close(); // ends the blocked ones too
        await Promise.all(blocked);
      });
    } finally {
      await busy.close();
    }
  });
});

describe('cancellation when the client goes away', () => {
  it('cancels the running query when the HTTP request is aborted', async () => {
    await withChunksLocked(async () => {
      const ctrl = new AbortController();
      const request = fetch(`${ctx.api.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: BLOCKED }),
        signal: ctrl.signal,
      }).catch(() => 'aborted');
      await waitFor(async () => (await runningOnChunks()) === 1, 10_000, 'the query to be blocked');
      ctrl.abort();
      expect(await request).toBe('aborted');
      await waitFor(async () => (await runningOnChunks()) === 0, 10_000, 'the query to be cancelled');
    });
    expect((await gql(ctx.api.url, BLOCKED)).errors).toBeUndefined();
  });

  it('cancels the running query when an SSE stream is closed', async () => {
    await withChunksLocked(async () => {
      const ctrl = new AbortController();
      const stream = fetch(`${ctx.api.url}/graphql?query=${encodeURIComponent(BLOCKED)}`, {
        headers: { accept: 'text/event-stream' },
        signal: ctrl.signal,
      }).then(
        async (res) => `${res.status} ${await res.text()}`,
        () => 'aborted',
      );
      // (the response starts with the first event, so the stream is not awaited before the abort)
      await waitFor(async () => (await runningOnChunks()) === 1, 10_000, 'the query to be blocked');
      ctrl.abort();
      expect(await stream).toBe('aborted');
      await waitFor(async () => (await runningOnChunks()) === 0, 10_000, 'the query to be cancelled');
    });
  });

  it('cancels the running query when a graphql-ws operation is completed, or its socket closed', async () => {
    const url = ctx.api.url.replace(/^http/, 'ws') + '/graphql';
    await withChunksLocked(async () => {
      const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0 });
      const dispose = client.subscribe({ query: BLOCKED }, { next: () => undefined, error: () => undefined, complete: () => undefined });
      await waitFor(async () => (await runningOnChunks()) === 1, 10_000, 'the query to be blocked');
      dispose(); // sends "complete" for the operation; the socket stays open
      await waitFor(async () => (await runningOnChunks()) === 0, 10_000, 'the query to be cancelled');

      client.subscribe({ query: BLOCKED }, { next: () => undefined, error: () => undefined, complete: () => undefined });
      await waitFor(async () => (await runningOnChunks()) === 1, 10_000, 'the second query to be blocked');
      await client.dispose(); // closes the socket
      await waitFor(async () => (await runningOnChunks()) === 0, 10_000, 'the second query to be cancelled');
    });
    expect((await gql(ctx.api.url, BLOCKED)).errors).toBeUndefined();
  });
});
