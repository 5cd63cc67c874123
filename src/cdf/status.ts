import type { Logger } from '../logger.ts';

/** The sync's state as lakets.cdf_state records it (STREAMING only while healthy: the durability gate relies on it). */
export type CdfState = 'STOPPED' | 'STARTING' | 'SNAPSHOT' | 'STREAMING' | 'ERROR' | 'UNAVAILABLE';

/** What one sync process knows of its progress; shared by the parts of a session. */
export interface CdfSyncStatus {
  state: CdfState;
  /** Every source transaction that committed before this LSN is durable in the lake. */
  committedLsn: bigint;
  deltaVersion: number;
  /** Change events in the lake table. */
  rowsSynced: number;
  commits: number;
  skippedTransactions: number;
  lastError?: string;
}

/** Errors that retrying cannot fix (configuration): the sync stops and says why. */
export class CdfSyncFatalError extends Error {
  override readonly name: string = 'CdfSyncFatalError';
  constructor(
    message: string,
    readonly state: CdfState = 'ERROR',
  ) {
    super(message);
  }
}

/**
 * A catch handler for an error that needs no action here, logged at debug level with the reason:
 * typically a connection being closed after the session already failed for a reason reported
 * elsewhere.
 */
export function ignoreWithReason(log: Logger | undefined, reason: string): (error: unknown) => void {
  return (error) => log?.debug({ err: error instanceof Error ? error.message : String(error) }, `cdf_sync: ${reason}`);
}

/**
 * Another process created the Delta version this sync was committing, and it was not a compaction
 * (which the writer catches up with by itself): two writers append to one table. Retrying would only
 * race it again, so the sync stops and says so.
 */
export function concurrentWriterError(conflict: Error): CdfSyncFatalError {
  return new CdfSyncFatalError(
    `${conflict.message}. Another process is writing this lake table (a second sync of this source, or a copy of this database ` +
      `pointed at the same lake); the sync stops, tiering stays closed, and nothing was overwritten.`,
  );
}
