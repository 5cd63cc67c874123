import { beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { useTestContext } from '../helpers/context.ts';
import { seededRandom } from '../../src/ticks/generator.ts';

const ctx = useTestContext('lvc');

beforeAll(async () => {
  await ctx.db.query('SELECT lakets.run_partition_manager()');
});

interface Cached {
  symbol: string;
  price: number;
  tick_id: string;
  time: Date;
}

async function cached(symbol: string): Promise<Cached | undefined> {
  const { rows } = await ctx.db.query<Cached>(`SELECT symbol, price, tick_id, time FROM _lvc_stock_ticks WHERE symbol = $1`, [symbol]);
  return rows[0];
}

/** The newest tick per symbol computed from the table itself: what the cache must hold. */
async function truth(): Promise<Map<string, { price: number; tick_id: string }>> {
  const { rows } = await ctx.db.query<{ symbol: string; price: number; tick_id: string }>(
    `SELECT DISTINCT ON (symbol) symbol, price, tick_id FROM stock_ticks ORDER BY symbol, time DESC, tick_id DESC`,
  );
  return new Map(rows.map((r) => [r.symbol, { price: r.price, tick_id: r.tick_id }]));
}

async function cache(): Promise<Map<string, { price: number; tick_id: string }>> {
  const { rows } = await ctx.db.query<{ symbol: string; price: number; tick_id: string }>(`SELECT symbol, price, tick_id FROM _lvc_stock_ticks`);
  return new Map(rows.map((r) => [r.symbol, { price: r.price, tick_id: r.tick_id }]));
}

/** Collects notifications on a channel from a separate LISTEN connection. */
async function listen(channel: string) {
  const client = new pg.Client({ connectionString: ctx.db.url });
  await client.connect();
  const received: string[] = [];
  client.on('notification', (m) => received.push(m.payload ?? ''));
  await client.query(`LISTEN ${channel}`);
  return {
    received,
    async settle() {
      await new Promise((r) => setTimeout(r, 150));
    },
    close: () => client.end(),
  };
}

describe('last value cache', () => {
  it('keeps the newest tick per symbol; a late tick never overwrites a newer price', async () => {
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '10 seconds', 'AAPL', 101, 1)`);
    expect((await cached('AAPL'))!.price).toBe(101);
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '20 seconds', 'AAPL', 99, 1)`);
    expect((await cached('AAPL'))!.price).toBe(101);
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '5 seconds', 'AAPL', 102, 1)`);
    expect((await cached('AAPL'))!.price).toBe(102);
  });

  it('takes the newest tick within one statement regardless of row order, ties broken by tick_id', async () => {
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES
      (now() - interval '1 second', 'MSFT', 3, 1),
      (now() - interval '3 seconds', 'MSFT', 1, 1),
      (now() - interval '2 seconds', 'MSFT', 2, 1)`);
    expect((await cached('MSFT'))!.price).toBe(3);
    // same timestamp: the later tick_id (inserted later) wins, in every layer
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES
      (date_trunc('second', now()), 'V', 10, 1), (date_trunc('second', now()), 'V', 11, 1)`);
    expect((await cached('V'))!.price).toBe(11);
    expect(await cache()).toEqual(await truth());
  });

  it('stays equal to the table under concurrent out-of-order writers, without deadlocks', async () => {
    const symbols = ['AAPL', 'MSFT', 'NVDA', 'GOOGL', 'AMZN', 'TSLA', 'JPM', 'V'];
    const writers = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const c = new pg.Client({ connectionString: ctx.db.url });
        await c.connect();
        return c;
      }),
    );
    const base = Date.now() - 60_000;
    await Promise.all(
      writers.map(async (c, w) => {
        const random = seededRandom(100 + w);
        for (let batch = 0; batch < 25; batch++) {
          const rows: string[] = [];
          // several symbols per statement, in a different order per writer
          for (let i = 0; i < 20; i++) {
            const symbol = symbols[Math.floor(random() * symbols.length)]!;
            const ms = base + Math.floor(random() * 55_000);
            rows.push(`('${new Date(ms).toISOString()}', '${symbol}', ${(1 + random() * 100).toFixed(4)}, 1)`);
          }
          await c.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES ${rows.join(',')}`);
        }
      }),
    );
    await Promise.all(writers.map((c) => c.end()));
    expect(await cache()).toEqual(await truth());
  });

  it('sends one notification per statement listing the symbols it changed', async () => {
    const l = await listen('lakets_lvc');
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume)
                   SELECT now() - (g || ' ms')::interval, s, 50 + g, 1
                     FROM unnest(ARRAY['AAPL','MSFT','NVDA']) s, generate_series(1, 100) g`);
    await l.settle();
    expect(l.received).toHaveLength(1);
    expect(JSON.parse(l.received[0]!)).toEqual({ table: 'stock_ticks', keys: ['AAPL', 'MSFT', 'NVDA'] });
    // a statement that changes nothing (only late ticks) notifies nobody
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '50 seconds', 'AAPL', 1, 1)`);
    await l.settle();
    expect(l.received).toHaveLength(1);
    await l.close();
  });

  it('sends a resync marker instead of a payload over ~7,000 bytes', async () => {
    const l = await listen('lakets_lvc');
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume)
                   SELECT now(), 'SYMBOL' || lpad(g::text, 6, '0'), 10, 1 FROM generate_series(1, 800) g`);
    await l.settle();
    expect(l.received.map((p) => JSON.parse(p))).toEqual([{ table: 'stock_ticks', resync: true }]);
    await l.close();
    await ctx.db.query(`DELETE FROM stock_ticks WHERE symbol LIKE 'SYMBOL%'`);
    expect([...(await cache()).keys()].some((k) => k.startsWith('SYMBOL'))).toBe(false);
  });

  it('falls back to the newest remaining tick when the latest is deleted or moved', async () => {
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES
      (now() - interval '30 seconds', 'ETH-USD', 1, 1), (now() - interval '20 seconds', 'ETH-USD', 2, 1), (now() - interval '10 seconds', 'ETH-USD', 3, 1)`);
    expect((await cached('ETH-USD'))!.price).toBe(3);
    const l = await listen('lakets_lvc');
    await ctx.db.query(`DELETE FROM stock_ticks WHERE symbol = 'ETH-USD' AND price = 3`);
    expect((await cached('ETH-USD'))!.price).toBe(2);
    // a correction that moves the latest tick back in time
    await ctx.db.query(`UPDATE stock_ticks SET time = now() - interval '40 seconds' WHERE symbol = 'ETH-USD' AND price = 2`);
    expect((await cached('ETH-USD'))!.price).toBe(1);
    // a price fix of the latest tick
    await ctx.db.query(`UPDATE stock_ticks SET price = 1.5 WHERE symbol = 'ETH-USD' AND price = 1`);
    expect((await cached('ETH-USD'))!.price).toBe(1.5);
    // a correction of an older tick leaves the cache alone
    await ctx.db.query(`UPDATE stock_ticks SET price = 7 WHERE symbol = 'ETH-USD' AND price = 2`);
    expect((await cached('ETH-USD'))!.price).toBe(1.5);
    // the last tick of a symbol is deleted: the symbol leaves the cache
    await ctx.db.query(`DELETE FROM stock_ticks WHERE symbol = 'ETH-USD'`);
    expect(await cached('ETH-USD')).toBeUndefined();
    await l.settle();
    expect(l.received.length).toBeGreaterThanOrEqual(4);
    for (const p of l.received) expect(JSON.parse(p).keys).toEqual(['ETH-USD']);
    await l.close();
    expect(await cache()).toEqual(await truth());
  });

  it('does not overwrite a newer concurrent insert while recomputing after a delete', async () => {
    await ctx.db.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '30 seconds', 'BTC-USD', 1, 1), (now() - interval '20 seconds', 'BTC-USD', 2, 1)`);
    const a = new pg.Client({ connectionString: ctx.db.url });
    const b = new pg.Client({ connectionString: ctx.db.url });
    await a.connect();
    await b.connect();
    await b.query('BEGIN');
    await b.query(`INSERT INTO stock_ticks (time, symbol, price, volume) VALUES (now() - interval '1 second', 'BTC-USD', 9, 1)`);
    await a.query('BEGIN');
    const deleting = a.query(`DELETE FROM stock_ticks WHERE symbol = 'BTC-USD' AND price = 2`);
    await new Promise((r) => setTimeout(r, 100));
    await b.query('COMMIT');
    await deleting;
    await a.query('COMMIT');
    await a.end();
    await b.end();
    expect((await cached('BTC-USD'))!.price).toBe(9);
  });
});
