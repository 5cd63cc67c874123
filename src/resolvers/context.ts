import type { AbortableQueryOptions } from 'kysely';
import type { Db } from '../db/pool.ts';
import type { Logger } from '../logger.ts';
import type { LakeReadGate } from '../lake/read-gate.ts';
import type { AssetCatalog } from './assets.ts';
import type { PriceFeed } from './price-feed.ts';
import type { PipelineFeed } from './pipeline-feed.ts';
import type { CandleFeed } from './candle-feed.ts';

/** What every resolver can reach, shared by the whole process; built once by the server. */
export interface ApiServices {
  /** Bulk reads (candles, ticks, partitions): a pool of their own, so they never hold the connections latestPrice needs. */
  db: Db;
  assets: AssetCatalog;
  prices: PriceFeed;
  pipeline: PipelineFeed;
  candles: CandleFeed;
  lakeReads: LakeReadGate;
  logger: Logger;
  /** The Delta Lake table of stock_ticks, for reads of dropped chunks (unset: Postgres only). */
  lakeDir?: string;
}

/** One request's context: the shared services plus who asked and whether they are still there. */
export interface ApiContext extends ApiServices {
  requestId: string;
  /** Aborted when the client goes away (HTTP request closed, SSE or WebSocket operation ended). */
  signal: AbortSignal;
}

/** Query options that stop the database work when the client goes away (pg_cancel_backend on the running query). */
export function cancelWith(ctx: Pick<ApiContext, 'signal'>): AbortableQueryOptions {
  return { signal: ctx.signal, inflightQueryAbortStrategy: 'cancel query' };
}
