// What is in a table's `_delta_log/`: commit files, checkpoints, and the `_last_checkpoint` hint.
// Only exact file names count. Hadoop `.crc` side files, `..NNN.json.<uuid>.tmp` leftovers, sub-folders
// such as `.tmp/` (an uncommitted attempt) and anything else a writer left there are ignored: a commit
// exists only once its zero-padded name exists (writers publish it atomically, put-if-absent).

import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { DeltaLogError } from './errors.ts';

export interface CheckpointFiles {
  readonly version: number;
  /** One file for a classic checkpoint, all parts in order for a multi-part one. */
  readonly files: readonly string[];
}

export interface LogListing {
  readonly logDir: string;
  /** Commit version -> absolute path of `NNNNNNNNNNNNNNNNNNNN.json`. */
  readonly commits: ReadonlyMap<number, string>;
  /** Complete checkpoints (all parts present), newest first. */
  readonly checkpoints: readonly CheckpointFiles[];
  /** Multi-part checkpoints with missing parts; never used, reported for diagnostics. */
  readonly incompleteCheckpoints: readonly number[];
}

export interface LastCheckpointHint {
  readonly version: number;
  readonly parts?: number;
}

const COMMIT_FILE = /^(\d{20})\.json$/;
const CLASSIC_CHECKPOINT_FILE = /^(\d{20})\.checkpoint\.parquet$/;
const MULTI_PART_CHECKPOINT_FILE = /^(\d{20})\.checkpoint\.(\d{10})\.(\d{10})\.parquet$/;

export function logDirOf(tableDir: string): string {
  return path.join(tableDir, '_delta_log');
}

export async function listDeltaLog(tableDir: string): Promise<LogListing> {
  const logDir = logDirOf(tableDir);
  let entries;
  try {
    entries = await readdir(logDir, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be listed (${code ?? String(error)})`;
    throw new DeltaLogError(`${logDir} ${why}: not a Delta table`, tableDir);
  }

  const commits = new Map<number, string>();
  const classic = new Map<number, string>();
  // version -> declared part count -> part number -> file
  const multiPart = new Map<number, Map<number, Map<number, string>>>();
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const name = entry.name;
    const full = path.join(logDir, name);
    let match: RegExpExecArray | null;
    if ((match = COMMIT_FILE.exec(name))) {
      commits.set(parseVersion(match[1], tableDir), full);
    } else if ((match = CLASSIC_CHECKPOINT_FILE.exec(name))) {
      classic.set(parseVersion(match[1], tableDir), full);
    } else if ((match = MULTI_PART_CHECKPOINT_FILE.exec(name))) {
      const version = parseVersion(match[1], tableDir);
      const part = Number(match[2]);
      const total = Number(match[3]);
      const byTotal = multiPart.get(version) ?? new Map<number, Map<number, string>>();
      const parts = byTotal.get(total) ?? new Map<number, string>();
      parts.set(part, full);
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
      checkpoints.push({ version, files: Array.from({ length: total }, (_, i) => parts.get(i + 1) as string) });
    } else if (!complete && !classic.has(version)) {
      incompleteCheckpoints.push(version);
    }
  }
  checkpoints.sort((a, b) => b.version - a.version);
  return { logDir, commits, checkpoints, incompleteCheckpoints };
}

function allPartsPresent(parts: ReadonlyMap<number, string>, total: number): boolean {
  for (let part = 1; part <= total; part++) if (!parts.has(part)) return false;
  return true;
}

function parseVersion(digits: string | undefined, tableDir: string): number {
  const version = Number(digits);
  if (!Number.isSafeInteger(version)) throw new DeltaLogError(`log version ${digits} is out of range`, tableDir);
  return version;
}

/**
 * Reads `_delta_log/_last_checkpoint`. It is only a hint (writers update it after the checkpoint, and
 * may crash in between, or write garbage), so a missing or unreadable file gives undefined, not an error.
 */
export async function readLastCheckpointHint(tableDir: string): Promise<LastCheckpointHint | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(logDirOf(tableDir), '_last_checkpoint'), 'utf8');
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
