// What is in a table's `_delta_log/`: commit files, checkpoints, and the `_last_checkpoint` hint.
// Only exact file names directly in the folder count. Hadoop `.crc` side files, `..NNN.json.<uuid>.tmp`
// leftovers, sub-folders such as `.tmp/` (an uncommitted attempt) or `_probe/` (the put-if-absent
// probe) and anything else a writer left there are ignored: a commit exists only once its zero-padded
// name exists (writers publish it atomically, create-if-absent).

import { DeltaLogError } from './errors.ts';
import { LakeStoreError } from './store/errors.ts';
import type { ObjectInfo } from './store/lake-store.ts';
import { asLakeTable, type LakeTable } from './table.ts';

export interface CheckpointFiles {
  readonly version: number;
  /** One file for a classic checkpoint, all parts in order for a multi-part one. */
  readonly files: readonly ObjectInfo[];
}

export interface LogListing {
  /** The log folder's path or URL, for messages. */
  readonly logDir: string;
  /** Commit version -> its `NNNNNNNNNNNNNNNNNNNN.json` object. */
  readonly commits: ReadonlyMap<number, ObjectInfo>;
  /** Complete checkpoints (all parts present), newest first. */
  readonly checkpoints: readonly CheckpointFiles[];
  /** Multi-part checkpoints with missing parts; never used, reported for diagnostics. */
  readonly incompleteCheckpoints: readonly number[];
  /** The first version the listing covers (0 unless it was asked to start at a checkpoint). */
  readonly fromVersion: number;
}

export interface LastCheckpointHint {
  readonly version: number;
  readonly parts?: number;
}

export const LOG_PREFIX = '_delta_log/';
const COMMIT_FILE = /^(\d{20})\.json$/;
const CLASSIC_CHECKPOINT_FILE = /^(\d{20})\.checkpoint\.parquet$/;
const MULTI_PART_CHECKPOINT_FILE = /^(\d{20})\.checkpoint\.(\d{10})\.(\d{10})\.parquet$/;

/** The log folder of a local table. */
export function logDirOf(tableDir: string): string {
  return `${tableDir.replace(/\/+$/, '')}/_delta_log`;
}

/** The key of a version's commit file. */
export function commitKey(version: number): string {
  return `${LOG_PREFIX}${String(version).padStart(20, '0')}.json`;
}

/**
 * Lists the log. With `fromVersion`, only names of that version and later are listed (object stores
 * list from there instead of from commit 0; the caller must not need older versions).
 */
export async function listDeltaLog(tableInput: LakeTable | string, options: { fromVersion?: number } = {}): Promise<LogListing> {
  const table = asLakeTable(tableInput);
  const logDir = table.store.locationOf('_delta_log');
  const fromVersion = options.fromVersion ?? 0;
  let objects: ObjectInfo[];
  try {
    objects = fromVersion > 0 ? await listLogFrom(table, fromVersion) : await table.store.list(LOG_PREFIX);
  } catch (error) {
    if (!(error instanceof LakeStoreError)) throw error;
    throw new DeltaLogError(`${logDir} cannot be listed (${error.message}): not a Delta table`, table.location);
  }
  if (objects.length === 0 && fromVersion === 0) throw new DeltaLogError(`${logDir} does not exist: not a Delta table`, table.location);

  const commits = new Map<number, ObjectInfo>();
  const classic = new Map<number, ObjectInfo>();
  // version -> declared part count -> part number -> file
  const multiPart = new Map<number, Map<number, Map<number, ObjectInfo>>>();
  for (const object of objects) {
    const name = object.key.slice(LOG_PREFIX.length);
    if (name.includes('/')) continue;
    let match: RegExpExecArray | null;
    if ((match = COMMIT_FILE.exec(name))) {
      commits.set(parseVersion(match[1], table.location), object);
    } else if ((match = CLASSIC_CHECKPOINT_FILE.exec(name))) {
      classic.set(parseVersion(match[1], table.location), object);
    } else if ((match = MULTI_PART_CHECKPOINT_FILE.exec(name))) {
      const version = parseVersion(match[1], table.location);
      const part = Number(match[2]);
      const total = Number(match[3]);
      const byTotal = multiPart.get(version) ?? new Map<number, Map<number, ObjectInfo>>();
      const parts = byTotal.get(total) ?? new Map<number, ObjectInfo>();
      parts.set(part, object);
      byTotal.set(total, parts);
      multiPart.set(version, byTotal);
    }
  }

  const checkpoints: CheckpointFiles[] = [];
  const incompleteCheckpoints: number[] = [];
  for (const [version, file] of classic) checkpoints.push({ version, files: [file] });
  for (const [version, byTotal] of multiPart) {
    // A crashed writer can leave parts of an attempt with another part count; any complete set will do.
    const complete = [...byTotal].find(([total, parts]) => total >= 1 && allPartsPresent(parts, total));
    if (complete && !classic.has(version)) {
      const [total, parts] = complete;
      checkpoints.push({ version, files: Array.from({ length: total }, (_, i) => parts.get(i + 1) as ObjectInfo) });
    } else if (!complete && !classic.has(version)) {
      incompleteCheckpoints.push(version);
    }
  }
  checkpoints.sort((a, b) => b.version - a.version);
  return { logDir, commits, checkpoints, incompleteCheckpoints, fromVersion };
}

/** Versions per name prefix when listing from a version: a block shares all digits but the last two. */
const BLOCK = 100;

/**
 * The log's names of `fromVersion` and later, block by block of 100 versions (one name prefix each).
 * Azure's listing cannot start after a name, so listing the whole log to keep its tail would cost a
 * request per 5,000 commits, and the sync adds thousands a day. Commits are contiguous: a block
 * that does not reach its last version is the last one with any.
 */
async function listLogFrom(table: LakeTable, fromVersion: number): Promise<ObjectInfo[]> {
  const after = `${LOG_PREFIX}${String(fromVersion).padStart(20, '0')}`;
  const out: ObjectInfo[] = [];
  for (let block = Math.floor(fromVersion / BLOCK); ; block++) {
    const found = (await table.store.list(`${LOG_PREFIX}${String(block).padStart(18, '0')}`)).filter((o) => o.key >= after);
    out.push(...found);
    const lastOfBlock = `${LOG_PREFIX}${String(block * BLOCK + BLOCK - 1).padStart(20, '0')}.json`;
    if (!found.some((o) => o.key === lastOfBlock)) return out;
  }
}

function allPartsPresent(parts: ReadonlyMap<number, ObjectInfo>, total: number): boolean {
  for (let part = 1; part <= total; part++) if (!parts.has(part)) return false;
  return true;
}

function parseVersion(digits: string | undefined, location: string): number {
  const version = Number(digits);
  if (!Number.isSafeInteger(version)) throw new DeltaLogError(`log version ${digits} is out of range`, location);
  return version;
}

/**
 * Whether a table exists at the store's root: its log holds a commit or a checkpoint (a leftover probe
 * or temp file is not one). Cheap on a long log: `_last_checkpoint` is looked at first.
 */
export async function lakeTableExists(tableInput: LakeTable | string): Promise<boolean> {
  const table = asLakeTable(tableInput);
  if ((await table.store.stat(`${LOG_PREFIX}_last_checkpoint`)) !== undefined) return true;
  const names = await table.store.list(LOG_PREFIX);
  return names.some((o) => /^_delta_log\/\d{20}\.(json|checkpoint\.parquet)$/.test(o.key));
}

/**
 * Reads `_delta_log/_last_checkpoint`. It is only a hint (writers update it after the checkpoint, and
 * may crash in between, or write garbage), so a missing or unreadable file gives undefined, not an error.
 */
export async function readLastCheckpointHint(tableInput: LakeTable | string): Promise<LastCheckpointHint | undefined> {
  const table = asLakeTable(tableInput);
  let text: string;
  try {
    text = (await table.store.read(`${LOG_PREFIX}_last_checkpoint`)).toString('utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (parsed === null || typeof parsed !== 'object') return undefined;
    const { version, parts } = parsed as Record<string, unknown>;
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) return undefined;
    return typeof parts === 'number' ? { version, parts } : { version };
  } catch {
    return undefined;
  }
}
