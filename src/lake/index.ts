// Public surface of the Delta Lake reader and of the lake stores. Other modules import from here.

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

// The lake on any store (a local folder, Azure Blob Storage, S3): configuration, the store, tables on
// it, local copies of remote files for DuckDB, and the put-if-absent probe the sync runs first.
export { lakeStoreConfigFromEnv, describeLakeStoreConfig, type LakeStoreConfig, type LakeEnv } from './store/lake-url.ts';
export { openLakeStore } from './store/open-store.ts';
export type { LakeStore, ObjectInfo, StagedObject } from './store/lake-store.ts';
export { LakeStoreConfigError, LakeStoreError, ObjectExistsError, ObjectNotFoundError } from './store/errors.ts';
export { asLakeTable, fileLakeTable, lakeTableOn, openLakeTable, type LakeTable } from './table.ts';
export { LakeReadTooLargeError, withLocalFiles, type LocalReadLimits } from './local-snapshot.ts';
export { assertPutIfAbsent, probePutIfAbsent, PutIfAbsentNotEnforcedError, type PutIfAbsentVerdict } from './store/put-if-absent-probe.ts';
