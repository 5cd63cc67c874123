// Errors of the lake's object stores. Callers must tell three things apart: "the object is already
// there" (a create-if-absent lost: another writer made that Delta version), "the object is not there",
// and "the store itself failed" (unreachable, refused our credentials, no such bucket). Each gets its
// own class; the messages name the object by its URL and never carry a credential.

/** A create-if-absent found the object already there: nothing was written. */
export class ObjectExistsError extends Error {
  override readonly name: string = 'ObjectExistsError';
  constructor(readonly location: string) {
    super(`${location} already exists`);
  }
}

/** The object does not exist. */
export class ObjectNotFoundError extends Error {
  override readonly name: string = 'ObjectNotFoundError';
  constructor(readonly location: string) {
    super(`${location} does not exist`);
  }
}

/** The store failed for another reason; `cause` holds the SDK's or the file system's error. */
export class LakeStoreError extends Error {
  override readonly name: string = 'LakeStoreError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
