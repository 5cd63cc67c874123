import type { Selectable } from 'kysely';
import { TICK_TABLE } from '../config.ts';
import { cancelledBy, type Db } from '../db/pool.ts';
import type { ChunksTable } from '../db/tables.ts';
import { InputError, quoteForMessage } from './input-error.ts';

/** A chunk of a ChronoTable as lakets.chunks records it. */
export type Partition = Selectable<ChunksTable>;
export type PartitionStatus = Partition['status'];

export const DEFAULT_PARTITIONS = 200;
export const MAX_PARTITIONS = 1000;
export const DEFAULT_RECENT_PARTITIONS = 30;
export const MAX_RECENT_PARTITIONS = 200;
const TABLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The chunks of the ChronoTables and their lifecycle, read on the bulk connections. */
export class PartitionCatalog {
  constructor(private readonly bulkDb: Db) {}

  /** Chunks of a ChronoTable, newest first. */
  async list(request: { table: string; status?: PartitionStatus | null; limit: number }, signal?: AbortSignal): Promise<Partition[]> {
    const { table, limit } = request;
    if (limit < 1 || limit > MAX_PARTITIONS) throw new InputError(`limit must be between 1 and ${MAX_PARTITIONS}`, { argument: 'limit' });
    // A table name is a Postgres identifier; anything else (a NUL byte, a 1 MB string) is refused
    // here rather than by the database.
    if (!TABLE_NAME.test(table)) throw new InputError(`${quoteForMessage(table)} is not a table name`, { argument: 'table' });
    const known = await this.bulkDb
      .selectFrom('lakets.chunks')
      .select('table_name')
      .where('table_name', '=', table)
      .limit(1)
      .executeTakeFirst(cancelledBy(signal));
    if (!known && table !== TICK_TABLE) throw new InputError(`unknown table "${table}"`, { argument: 'table' });
    let query = this.bulkDb.selectFrom('lakets.chunks').selectAll().where('table_name', '=', table);
    if (request.status) query = query.where('status', '=', request.status);
    return query.orderBy('range_start', 'desc').orderBy('generation', 'desc').limit(limit).execute(cancelledBy(signal));
  }

  /** The newest chunks of the tick table (any status, none ahead of now), for the lifecycle strip. */
  recent(limit: number, signal?: AbortSignal): Promise<Partition[]> {
    return this.bulkDb
      .selectFrom('lakets.chunks')
      .selectAll()
      .where('table_name', '=', TICK_TABLE)
      .where('range_start', '<=', new Date())
      .orderBy('range_start', 'desc')
      .orderBy('generation', 'desc')
      .limit(Math.min(MAX_RECENT_PARTITIONS, Math.max(1, limit)))
      .execute(cancelledBy(signal));
  }
}
