import type { ListenHub } from '../db/listen-hub.ts';
import type { Db } from '../db/pool.ts';
import type { Logger } from '../logger.ts';
import { AssetCatalog } from './assets.ts';
import { CandleFeed } from './candle-feed.ts';
import { CandleService } from './candles.ts';
import { PartitionCatalog } from './partitions.ts';
import { PipelineFeed } from './pipeline.ts';
import { PriceFeed } from './prices.ts';
import { TickHistory, type TickLake } from './ticks.ts';
import { TimeZones } from './time-zones.ts';
import { readWatermarks, type Watermark } from './watermarks.ts';

/**
 * What the API serves, without any GraphQL: the running services over the database and the lake.
 * Built once per process; every request of every transport shares them.
 */
export interface Services {
  assets: AssetCatalog;
  prices: PriceFeed;
  candles: CandleService;
  watermarks: { read(signal?: AbortSignal): Promise<Watermark[]> };
  ticks: TickHistory;
  partitions: PartitionCatalog;
  pipeline: PipelineFeed;
  /** Stops the feeds and closes their subscribers' queues. */
  close(): void;
}

export interface ServiceDependencies {
  /** Short reads (latest prices, assets, pipeline status, the feeds' reads). */
  db: Db;
  /** Bulk reads (candles, ticks, partitions, watermarks): connections of their own, so they never hold the ones latestPrice needs. */
  bulkDb: Db;
  /** The process's one LISTEN connection. */
  hub: ListenHub;
  /** The tick table's lake, for ticks of dropped chunks (unset: Postgres only). */
  lake?: TickLake;
  logger: Logger;
}

export function createServices({ db, bulkDb, hub, lake, logger }: ServiceDependencies): Services {
  const assets = new AssetCatalog(db);
  const prices = new PriceFeed(db, hub, logger);
  const candleFeed = new CandleFeed(db, hub, logger);
  const pipeline = new PipelineFeed(db, logger);
  return {
    assets,
    prices,
    candles: new CandleService(bulkDb, assets, new TimeZones(db), candleFeed),
    watermarks: { read: (signal) => readWatermarks(bulkDb, signal) },
    ticks: new TickHistory(bulkDb, assets, lake),
    partitions: new PartitionCatalog(bulkDb),
    pipeline,
    close() {
      prices.close();
      candleFeed.close();
      pipeline.close();
    },
  };
}
