// Helpers to compare a change-feed lake table with its Postgres source: rows in one canonical text
// form (timestamps with microseconds, doubles as JS prints them), counts and a checksum.

import { createHash } from 'node:crypto';
import pg from 'pg';
import { readChangeFeedCurrentState } from '../../src/lake/change-feed.ts';
import { queryRows } from '../../src/lake/duckdb.ts';
import { liveRowsSql } from '../../src/lake/reader.ts';
import { withLocalFiles } from '../../src/lake/local-snapshot.ts';
import { loadSnapshot } from '../../src/lake/snapshot.ts';
import type { LakeTable } from '../../src/lake/table.ts';
import { lakeStoreConfigFromEnv, type LakeStoreConfig } from '../../src/config/lake-store.ts';

export const TICK_COLUMNS = ['time', 'symbol', 'price', 'volume', 'tick_id'] as const;

export interface RowSet {
  count: number;
  checksum: string;
  lines: string[];
}

function rowSet(lines: string[]): RowSet {
  lines.sort();
  const hash = createHash('sha256');
  for (const line of lines) hash.update(line).update('\n');
  return { count: lines.length, checksum: hash.digest('hex'), lines };
}

/** The default lake of a data folder: `<dataDir>/lake` on the local disk (the table is `<dataDir>/lake/stock_ticks`). */
export function fileLake(dataDir: string): LakeStoreConfig {
  return lakeStoreConfigFromEnv({}, dataDir);
}

/** The source table's rows, canonical. */
export async function sourceTicks(client: pg.ClientBase | pg.Pool, table = 'stock_ticks'): Promise<RowSet> {
  const { rows } = await client.query<{ t: string; symbol: string; price: number; volume: number; tick_id: string }>(
    `SELECT to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t, symbol, price, volume, tick_id::text
       FROM ${pg.escapeIdentifier(table)}`,
  );
  return rowSet(rows.map((r) => `${r.t}|${r.symbol}|${r.price}|${r.volume}|${r.tick_id}`));
}

/** The lake table's current state (inserts and post-images minus deletes and pre-images), canonical. */
export async function lakeTicks(tableDir: LakeTable | string): Promise<RowSet> {
  const snapshot = await loadSnapshot(tableDir);
  const rows = await readChangeFeedCurrentState(snapshot, { tableColumns: [...TICK_COLUMNS], keyColumns: ['tick_id'] });
  return rowSet(rows.map((r) => `${String(r['time'])}|${String(r['symbol'])}|${String(r['price'])}|${String(r['volume'])}|${String(r['tick_id'])}`));
}

/** Change events in the lake by `_change_type`, and the total. */
export async function lakeEventCounts(tableDir: LakeTable | string): Promise<Record<string, number>> {
  const snapshot = await loadSnapshot(tableDir);
  const rows = await withLocalFiles(snapshot, (local) => queryRows(`SELECT _change_type AS k, count(*) AS n FROM (${liveRowsSql(local)}) AS e GROUP BY 1`));
  const out: Record<string, number> = { total: 0 };
  for (const r of rows) {
    out[String(r['k'])] = Number(r['n']);
    out['total'] = (out['total'] ?? 0) + Number(r['n']);
  }
  return out;
}

/** Events that occur more than once (same change type, same row, same commit LSN): must be none. */
export async function lakeDuplicateEvents(tableDir: LakeTable | string): Promise<number> {
  const snapshot = await loadSnapshot(tableDir);
  const rows = await withLocalFiles(snapshot, (local) =>
    queryRows(
      `SELECT count(*) AS n FROM (
         SELECT _change_type, "time", symbol, price, volume, tick_id, _lsn, count(*) AS c
           FROM (${liveRowsSql(local)}) AS e GROUP BY ALL HAVING count(*) > 1) AS d`,
    ),
  );
  return Number(rows[0]?.['n'] ?? 0);
}
