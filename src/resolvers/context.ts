import type { Db } from '../server/pool.ts';
import type { AssetCatalog } from './assets.ts';
import type { PriceFeed } from './price-feed.ts';
import type { PipelineFeed } from './pipeline-feed.ts';
import type { CandleFeed } from './candle-feed.ts';

/** What every resolver can reach; built once per process by the server. */
export interface ApiContext {
  db: Db;
  assets: AssetCatalog;
  prices: PriceFeed;
  pipeline: PipelineFeed;
  candles: CandleFeed;
  /** The Delta Lake table of stock_ticks, for reads of dropped chunks (unset: Postgres only). */
  lakeDir?: string;
}
