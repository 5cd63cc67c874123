// Error classes of the Delta reader. Callers (the tiering gate above all) must be able to tell
// "this table is broken or incomplete" from "this table uses something we cannot read" from
// "you asked for a version that does not exist", so each gets its own class.

/** The `_delta_log` is missing, unreadable, not contiguous, or holds an action we cannot make sense of. */
export class DeltaLogError extends Error {
  override readonly name: string = 'DeltaLogError';
  constructor(
    message: string,
    readonly tableDir: string,
  ) {
    super(message);
  }
}

/** A version was asked for that the log does not hold (beyond the latest, or cleaned up without a checkpoint). */
export class DeltaVersionNotFoundError extends DeltaLogError {
  override readonly name: string = 'DeltaVersionNotFoundError';
  constructor(
    message: string,
    tableDir: string,
    readonly requestedVersion: number,
  ) {
    super(message, tableDir);
  }
}

/**
 * The table needs a reader capability we do not implement (deletion vectors, column mapping, a newer
 * reader version, an unknown data type...). Reading it anyway would return wrong rows, so we refuse.
 */
export class UnsupportedDeltaFeatureError extends Error {
  override readonly name: string = 'UnsupportedDeltaFeatureError';
  constructor(
    message: string,
    readonly tableDir: string,
    /** The offending feature names, e.g. `['deletionVectors']` or `['minReaderVersion=4']`. */
    readonly features: readonly string[],
  ) {
    super(message);
  }
}
