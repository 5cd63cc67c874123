// Change-feed lake tables for the lake's own tests, on a local folder or on Azurite (a real server
// started here): the tick columns, tick events as the sync writes them, and every live event of a
// table in one canonical form to compare versions with.

import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { lakeStoreConfigFromEnv } from '../../src/config/lake-store.ts';
import { changeFeedColumns, changeFeedPartition, sourceBinding } from '../../src/lake/change-feed-table.ts';
import { readRows } from '../../src/lake/reader.ts';
import type { DeltaSnapshot } from '../../src/lake/snapshot.ts';
import { openLakeTable, type LakeTable } from '../../src/lake/table.ts';
import type { DeltaWriterOptions, LakeRow } from '../../src/lake/writer.ts';
import { startAzurite, type StoreServer } from './object-stores.ts';

export const tickColumns = changeFeedColumns([
  { name: 'time', pgType: 'timestamp with time zone' },
  { name: 'symbol', pgType: 'text' },
  { name: 'price', pgType: 'double precision' },
  { name: 'volume', pgType: 'double precision' },
  { name: 'tick_id', pgType: 'bigint' },
]);
export const tickPartition = changeFeedPartition('time');

export const tickWriterOptions: Omit<DeltaWriterOptions, 'tableDir'> = {
  columns: tickColumns,
  partition: tickPartition,
  configuration: sourceBinding({ systemIdentifier: '7301', database: 'lakets', slot: 'lakets_cdf_lakets_stock_ticks', table: 'public.stock_ticks' }),
  tableName: 'stock_ticks',
};

/** A tick event as text, at `seconds` past midnight of `day` (microseconds distinct per id). */
export function tickEvent(day: string, seconds: number, id: number, type = 'insert', lsn = 1000n, price = 100 + id / 4): LakeRow {
  const hh = String(Math.floor(seconds / 3600)).padStart(2, '0');
  const mm = String(Math.floor(seconds / 60) % 60).padStart(2, '0');
  const ss = String(seconds % 60).padStart(2, '0');
  return [`${day} ${hh}:${mm}:${ss}.${String(id % 1_000_000).padStart(6, '0')}+00`, id % 3 === 0 ? 'MSFT' : 'AAPL', String(price), '1.5', String(id), type, lsn.toString(), '2024-03-02 00:00:00.000001+00'];
}

/** Every live event of a snapshot (all columns, the partition too), sorted: equal lists = the same events. */
export async function eventLines(snapshot: DeltaSnapshot): Promise<string[]> {
  const rows = await readRows(snapshot);
  return rows
    .map((r) => ['time', 'symbol', 'price', 'volume', 'tick_id', '_change_type', '_lsn', '_commit_timestamp', 'date'].map((c) => String(r[c])).join('|'))
    .sort();
}

/** Where the tests of a file put their tables: a local folder, or a container on its own Azurite. */
export interface LakeStoreFixture {
  readonly kind: 'file' | 'az';
  /** A new table `<prefix>/stock_ticks` (closed after the file). */
  table(prefix: string): LakeTable;
  close(): Promise<void>;
}

export async function lakeStoreFixture(kind: 'file' | 'az', label: string): Promise<LakeStoreFixture> {
  const scratch = mkdtempSync(path.join(os.tmpdir(), `lakets-${label}-`));
  let azurite: StoreServer | undefined;
  if (kind === 'az') {
    azurite = await startAzurite();
    await azurite.createBucket('lake');
  }
  const opened: LakeTable[] = [];
  return {
    kind,
    table(prefix) {
      const env =
        kind === 'az'
          ? { ...azurite!.env, LAKETS_LAKE_URL: `az://lake/${prefix}`, LAKETS_LAKE_CACHE_DIR: path.join(scratch, 'cache') }
          : { LAKETS_LAKE_URL: path.join(scratch, prefix) };
      const table = openLakeTable(lakeStoreConfigFromEnv(env, path.join(scratch, 'data')), 'stock_ticks');
      opened.push(table);
      return table;
    },
    async close() {
      for (const table of opened) await table.close();
      await azurite?.stop();
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
