// What every writer of the tick table needs: COPY of a batch (one statement, so the statement-level
// triggers fire once), the assets to write for, and where each symbol's price stands.

import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { TICK_TABLE } from '../config.ts';
import { formatMicrosUtc } from '../lake/lsn.ts';
import { seededRandom, type SymbolSpec, type Tick } from './generator.ts';

/** Writes ticks with COPY in one statement per batch (the statement-level triggers fire once). */
export async function copyTicks(client: pg.ClientBase, ticks: readonly Tick[], table = TICK_TABLE): Promise<void> {
  if (ticks.length === 0) return;
  let body = '';
  for (const t of ticks) body += `${formatMicrosUtc(t.timeMicros)}\t${t.symbol}\t${t.price}\t${t.volume}\n`;
  const stream = client.query(copyFrom(`COPY ${pg.escapeIdentifier(table)} (time, symbol, price, volume) FROM STDIN`));
  await pipeline(Readable.from([body]), stream);
}

/**
 * The latest price of each symbol from the table's last value cache: where a new stream (after a
 * backfilled history or a restart) continues its walks, so the chart does not jump back to the
 * base prices. Empty when the table has no cache or no ticks yet.
 */
export async function latestPrices(client: pg.ClientBase, table = TICK_TABLE): Promise<Map<string, number>> {
  const { rows: registry } = await client.query<{ table_schema: string; lvc_table: string }>(
    `SELECT c.table_schema, l.lvc_table FROM lakets.lvc_tables l JOIN lakets.chronotables c USING (table_name)
      WHERE l.table_name = $1 AND l.key_columns = ARRAY['symbol'] AND 'price' = ANY (l.value_columns)`,
    [table],
  );
  const lvc = registry[0];
  if (!lvc) return new Map();
  const { rows } = await client.query<{ symbol: string; price: number }>(
    `SELECT symbol, price FROM ${pg.escapeIdentifier(lvc.table_schema)}.${pg.escapeIdentifier(lvc.lvc_table)}`,
  );
  return new Map(rows.map((r) => [r.symbol, r.price]));
}

/** The ten seeded assets, then synthetic ones up to `count` (created in stock_assets). */
export async function ensureSymbols(client: pg.ClientBase, count: number): Promise<SymbolSpec[]> {
  const { rows: real } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM stock_assets WHERE exchange <> 'SIM'`);
  const synthetic = count - Number(real[0]?.n ?? 0);
  if (synthetic > 0) {
    const random = seededRandom(7);
    const values: unknown[] = [];
    const tuples: string[] = [];
    for (let i = 1; i <= synthetic; i++) {
      const symbol = `SYN${String(i).padStart(4, '0')}`;
      const p = values.length;
      tuples.push(`($${p + 1}, $${p + 2}, 'Synthetic', 'SIM', $${p + 3}, $${p + 4})`);
      values.push(symbol, `Synthetic asset ${i}`, Math.round(10 + random() * 490), 0.15 + random() * 0.5);
    }
    await client.query(
      `INSERT INTO stock_assets (symbol, name, sector, exchange, base_price, volatility) VALUES ${tuples.join(', ')}
       ON CONFLICT (symbol) DO NOTHING`,
      values,
    );
  }
  // Seeded assets first (they are the real names), synthetic ones after.
  const { rows } = await client.query<{ symbol: string; base_price: number; volatility: number }>(
    `SELECT symbol, base_price, volatility FROM stock_assets
      ORDER BY (exchange = 'SIM'), symbol LIMIT $1`,
    [count],
  );
  return rows.map((r) => ({ symbol: r.symbol, basePrice: r.base_price, volatility: r.volatility }));
}
