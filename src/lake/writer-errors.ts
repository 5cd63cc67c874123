// Errors of the Delta writer. The sync must tell "someone else committed this version" (reload and
// re-check the txn) from "this table belongs to another source" (never append: refuse, ARCHITECTURE.md H7).

/** Another writer created the commit version this writer tried to create (put-if-absent lost). */
export class DeltaCommitConflictError extends Error {
  override readonly name: string = 'DeltaCommitConflictError';
  constructor(
    readonly tableDir: string,
    readonly version: number,
  ) {
    super(`Delta commit ${version} of ${tableDir} already exists: another writer committed it; reopen the table`);
  }
}

/**
 * The table is bound to another source (system identifier, database, slot) or has another schema.
 * Appending would mix two change feeds whose LSNs mean different things, so the writer refuses.
 */
export class DeltaTableMismatchError extends Error {
  override readonly name: string = 'DeltaTableMismatchError';
  constructor(
    message: string,
    readonly tableDir: string,
    readonly differences: readonly string[],
  ) {
    super(message);
  }
}

/**
 * The table a writer was appending to is gone from the store (its latest commit, or a table created
 * by someone else where it expected none): the lake was emptied or replaced. Reopen to see what is there.
 */
export class LakeTableGoneError extends Error {
  override readonly name: string = 'LakeTableGoneError';
  constructor(
    readonly tableDir: string,
    readonly version: number,
  ) {
    super(
      version < 0
        ? `a Delta table appeared at ${tableDir} while this writer was creating one; reopen the table`
        : `version ${version} of the Delta table at ${tableDir} is gone from the store: the table was emptied or replaced; reopen it`,
    );
  }
}
