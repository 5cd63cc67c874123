import type { ColumnType, Generated } from 'kysely';
import { TICK_TABLE } from '../config.ts';

/** The tick table's last value cache (lakets.enable_lvc names it after its table). */
export const TICK_LVC_TABLE = `_lvc_${TICK_TABLE}` as const;

/** Kysely's view of the tables the API reads (src/sql/ is the source of truth). */
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type Int8 = ColumnType<string, string | number | bigint, string | number | bigint>;

export interface StockAssetsTable {
  symbol: string;
  name: string;
  sector: string;
  exchange: string;
  base_price: number;
  volatility: number;
}

export interface StockTicksTable {
  time: Timestamp;
  symbol: string;
  price: number;
  volume: number;
  tick_id: Generated<Int8>;
}

export interface LvcStockTicksTable {
  symbol: string;
  time: Timestamp;
  price: number;
  volume: number;
  tick_id: Int8;
  last_updated: Timestamp;
}

export interface ChunksTable {
  id: Generated<Int8>;
  table_name: string;
  chunk_name: string;
  generation: number;
  range_start: Timestamp;
  range_end: Timestamp;
  status: 'active' | 'tiered' | 'dropped';
  row_count: Int8;
  size_bytes: Int8;
  last_write_lsn: string | null;
  last_write_at: Timestamp | null;
  created_at: Timestamp;
  tiered_at: Timestamp | null;
  dropped_at: Timestamp | null;
}

export interface JobRunsTable {
  id: Generated<Int8>;
  job: string;
  started_at: Timestamp;
  finished_at: Timestamp | null;
  status: 'running' | 'succeeded' | 'failed' | 'skipped';
  rows_affected: Int8 | null;
  detail: unknown;
}

export interface Database {
  stock_assets: StockAssetsTable;
  [TICK_TABLE]: StockTicksTable;
  [TICK_LVC_TABLE]: LvcStockTicksTable;
  'lakets.chunks': ChunksTable;
  'lakets.job_runs': JobRunsTable;
}
