// Durable, atomic file operations for the Delta writer on a local file system (docs/ARCHITECTURE.md H13: the
// hard-link put-if-absent below does not exist on object storage).
//
// - A data file is fsynced, and so is its folder, before any commit names it.
// - A commit is written to a temp file, fsynced, then hard-linked to its final name. link(2) fails
//   with EEXIST when the name exists, so two writers can never both create version N: that is the
//   put-if-absent Delta's protocol requires of a log store. The folder is fsynced after the link so
//   the new name survives a power cut.
// - Files that may be replaced (checkpoints, _last_checkpoint) use temp file + fsync + rename.

import { randomUUID } from 'node:crypto';
import { link, open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

export class PutIfAbsentConflictError extends Error {
  override readonly name: string = 'PutIfAbsentConflictError';
  constructor(readonly target: string) {
    super(`${target} already exists`);
  }
}

/** fsync a file (flushes its data and metadata). */
export async function fsyncFile(file: string): Promise<void> {
  const handle = await open(file, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** fsync a folder, which makes the names created or removed in it durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `data` to a temp file next to `target` and fsyncs it; returns the temp file's path. */
export async function writeTempFile(target: string, data: string | Uint8Array): Promise<string> {
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${randomUUID()}.tmp`);
  const handle = await open(temp, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return temp;
}

/**
 * Publishes a fsynced temp file under `target` only if `target` does not exist (hard link), then
 * removes the temp name and fsyncs the folder. Throws PutIfAbsentConflictError when it exists.
 */
export async function linkIfAbsent(temp: string, target: string): Promise<void> {
  try {
    await link(temp, target);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new PutIfAbsentConflictError(target);
    throw error;
  }
  await unlink(temp);
  await fsyncDir(path.dirname(target));
}

/** Replaces `target` atomically with `data` (temp file, fsync, rename, fsync the folder). */
export async function replaceFileDurably(target: string, data: string | Uint8Array): Promise<void> {
  const temp = await writeTempFile(target, data);
  await rename(temp, target);
  await fsyncDir(path.dirname(target));
}

/** Moves an already written file into place durably (fsync it, rename, fsync the folder). */
export async function moveIntoPlace(source: string, target: string): Promise<void> {
  await fsyncFile(source);
  await rename(source, target);
  await fsyncDir(path.dirname(target));
}
