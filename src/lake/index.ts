// Public surface of the Delta Lake reader. Other modules import from here.

export { DeltaLogError, DeltaVersionNotFoundError, UnsupportedDeltaFeatureError } from './errors.ts';
export type { DeltaDataFile, DeltaTombstone, DeltaProtocol, DeletionVectorDescriptor } from './actions.ts';
export type { DeltaFileStats } from './stats.ts';
export { rowCountFromStats } from './stats.ts';
export type { DeltaDataType, DeltaStructField, DeltaStructType } from './schema.ts';
export { duckdbTypeOf } from './schema.ts';
export { MAX_SUPPORTED_READER_VERSION, SUPPORTED_READER_FEATURES } from './protocol.ts';
export { latestVersion } from './log.ts';
export { loadSnapshot, type DeltaSnapshot, type DeltaTableMetadata, type LoadSnapshotOptions } from './snapshot.ts';
export { liveRowsSql, readRows, verifyLiveFiles, type LiveRowsSqlOptions, type ReadRowsOptions } from './reader.ts';
export {
  CHANGE_FEED_META_COLUMNS,
  changeFeedCurrentStateSql,
  currentStateSqlFromChanges,
  readChangeFeedCurrentState,
  type ChangeType,
  type CurrentStateOptions,
} from './change-feed.ts';
export { getDuckDB, queryRows, runSql, withDuckDBConnection } from './duckdb.ts';
export type { PlainRow, PlainValue } from './duckdb-values.ts';
