// Log replay: rebuilds a table version from the newest usable checkpoint at or below it plus the JSON
// commits after it, applied in version order. An `add` or `remove` replaces any earlier entry with the
// same file key (path, deletion vector id), so the last word about a file wins.

import { normalizeActions, type DeltaDataFile, type DeltaMetadataAction, type DeltaProtocol, type DeltaTombstone, type LogAction } from './actions.ts';
import { readCheckpointActions } from './checkpoint.ts';
import { DeltaLogError, DeltaVersionNotFoundError, UnsupportedDeltaFeatureError } from './errors.ts';
import { listDeltaLog, readLastCheckpointHint, type CheckpointFiles, type LastCheckpointHint, type LogListing } from './log-listing.ts';
import type { ObjectInfo } from './store/lake-store.ts';
import { asLakeTable, type LakeTable } from './table.ts';

export interface ReplayedLog {
  readonly tableDir: string;
  readonly version: number;
  readonly protocol: DeltaProtocol | null;
  readonly metaData: DeltaMetadataAction | null;
  /** Live files by file key. */
  readonly files: ReadonlyMap<string, DeltaDataFile>;
  /** Tombstones by file key (a key is never in both maps). */
  readonly tombstones: ReadonlyMap<string, DeltaTombstone>;
  /** Streaming/idempotent-writer progress: txn appId -> its last committed version. */
  readonly txns: ReadonlyMap<string, bigint>;
  /** The checkpoint the replay started from, or null when it started at commit 0. */
  readonly checkpointVersion: number | null;
  /** Things that were off but did not prevent a correct answer (stale hint, unreadable checkpoint...). */
  readonly warnings: readonly string[];
}

/** The newest committed version, from the file names alone. */
export async function latestVersion(tableInput: LakeTable | string): Promise<number> {
  const table = asLakeTable(tableInput);
  return newestVersionIn(await listDeltaLog(table), table.location);
}

export async function replayLog(tableInput: LakeTable | string, options: { version?: number } = {}): Promise<ReplayedLog> {
  const table = asLakeTable(tableInput);
  // On a remote store, listing the whole log costs a request per thousand names and grows with every
  // commit; from the checkpoint `_last_checkpoint` names, it is a few. Only when that checkpoint is
  // there, readable and not newer than the version asked for; otherwise the full listing decides.
  if (table.store.localRoot === undefined) {
    const hint = await readLastCheckpointHint(table);
    if (hint !== undefined && (options.version === undefined || options.version >= hint.version)) {
      const listing = await listDeltaLog(table, { fromVersion: hint.version });
      if (listing.checkpoints.some((checkpoint) => checkpoint.version === hint.version)) {
        try {
          const replayed = await replayListing(table, listing, hint, options);
          if (replayed.checkpointVersion !== null && replayed.checkpointVersion >= hint.version) return replayed;
        } catch (error) {
          // A gap or an unreadable checkpoint in the short listing: the full one decides (and explains).
          if (!(error instanceof DeltaLogError)) throw error;
        }
      }
    }
  }
  return replayListing(table, await listDeltaLog(table), await readLastCheckpointHint(table), options);
}

async function replayListing(
  table: LakeTable,
  listing: LogListing,
  hint: LastCheckpointHint | undefined,
  options: { version?: number },
): Promise<ReplayedLog> {
  const tableDir = table.location;
  const latest = newestVersionIn(listing, tableDir);
  const target = options.version ?? latest;
  if (!Number.isSafeInteger(target) || target < 0) {
    throw new DeltaVersionNotFoundError(`version ${target} is not a valid Delta version`, tableDir, target);
  }
  if (target > latest) {
    throw new DeltaVersionNotFoundError(`version ${target} does not exist; the latest version is ${latest}`, tableDir, target);
  }

  const warnings: string[] = [];
  // The listing is authoritative; `_last_checkpoint` is only cross-checked. It may lag behind (written
  // after the checkpoint) or be wrong, and neither may change the answer.
  if (listing.fromVersion === 0 && hint !== undefined && !listing.checkpoints.some((checkpoint) => checkpoint.version === hint.version)) {
    warnings.push(`_last_checkpoint names version ${hint.version}, but no complete checkpoint of that version exists`);
  }
  for (const version of listing.incompleteCheckpoints) warnings.push(`multi-part checkpoint ${version} is missing parts`);

  const state = new ReplayState();
  const start = await loadNewestUsableCheckpoint(table, listing, target, state, warnings);
  const firstCommit = start === null ? 0 : start + 1;
  assertCommitsPresent(tableDir, listing, firstCommit, target, start, warnings);

  for (let version = firstCommit; version <= target; version++) {
    const file = listing.commits.get(version) as ObjectInfo;
    for (const action of await readCommitActions(table, file, version)) state.apply(action);
  }

  return {
    tableDir,
    version: target,
    protocol: state.protocol,
    metaData: state.metaData,
    files: state.files,
    tombstones: state.tombstones,
    txns: state.txns,
    checkpointVersion: start,
    warnings,
  };
}

class ReplayState {
  protocol: DeltaProtocol | null = null;
  metaData: DeltaMetadataAction | null = null;
  readonly files = new Map<string, DeltaDataFile>();
  readonly tombstones = new Map<string, DeltaTombstone>();
  readonly txns = new Map<string, bigint>();

  apply(action: LogAction): void {
    switch (action.kind) {
      case 'protocol':
        this.protocol = action.protocol;
        break;
      case 'metaData':
        this.metaData = action.metaData;
        break;
      case 'txn':
        this.txns.set(action.appId, action.version);
        break;
      case 'add':
        this.tombstones.delete(action.key);
        this.files.set(action.key, action.file);
        break;
      case 'remove':
        this.files.delete(action.key);
        this.tombstones.set(action.key, action.tombstone);
        break;
    }
  }

  reset(): void {
    this.protocol = null;
    this.metaData = null;
    this.files.clear();
    this.tombstones.clear();
    this.txns.clear();
  }
}

function newestVersionIn(listing: LogListing, tableDir: string): number {
  let newest = -1;
  for (const version of listing.commits.keys()) newest = Math.max(newest, version);
  for (const checkpoint of listing.checkpoints) newest = Math.max(newest, checkpoint.version);
  if (newest < 0) throw new DeltaLogError(`${listing.logDir} holds no commits: not a Delta table`, tableDir);
  return newest;
}

/**
 * Loads the newest checkpoint at or below `target` that can be read, into `state`. A checkpoint that
 * fails to read (truncated, corrupt) is skipped in favour of an older one or of replay from commit 0,
 * which gives the same state as long as those commits are still there. Returns its version, or null.
 */
async function loadNewestUsableCheckpoint(
  table: LakeTable,
  listing: LogListing,
  target: number,
  state: ReplayState,
  warnings: string[],
): Promise<number | null> {
  const candidates = listing.checkpoints.filter((checkpoint) => checkpoint.version <= target);
  for (const checkpoint of candidates) {
    let actions: LogAction[];
    try {
      actions = await readCheckpointActions(table, checkpoint);
    } catch (error) {
      if (error instanceof UnsupportedDeltaFeatureError) throw error;
      warnings.push(`checkpoint ${describeCheckpoint(checkpoint)} could not be read and was skipped: ${(error as Error).message}`);
      continue;
    }
    state.reset();
    for (const action of actions) state.apply(action);
    if (state.protocol === null || state.metaData === null) {
      warnings.push(`checkpoint ${describeCheckpoint(checkpoint)} lacks protocol or metaData and was skipped`);
      state.reset();
      continue;
    }
    return checkpoint.version;
  }
  return null;
}

function describeCheckpoint(checkpoint: CheckpointFiles): string {
  return checkpoint.files.length === 1 ? String(checkpoint.version) : `${checkpoint.version} (${checkpoint.files.length} parts)`;
}

/** Every commit from `first` to `target` must be there: a missing one means the log is broken. */
function assertCommitsPresent(
  tableDir: string,
  listing: LogListing,
  first: number,
  target: number,
  checkpoint: number | null,
  warnings: readonly string[],
): void {
  for (let version = first; version <= target; version++) {
    if (listing.commits.has(version)) continue;
    const notes = warnings.length > 0 ? ` (${warnings.join('; ')})` : '';
    if (checkpoint === null && version === 0) {
      const oldest = listing.commits.size > 0 ? `oldest commit is ${Math.min(...listing.commits.keys())}` : 'no commits left';
      throw new DeltaVersionNotFoundError(
        `version ${target} cannot be reconstructed: commit 0 is gone (${oldest}) and no readable checkpoint is at or below ${target}${notes}`,
        tableDir,
        target,
      );
    }
    const from = checkpoint === null ? 'commit 0' : `checkpoint ${checkpoint}`;
    throw new DeltaLogError(
      `the Delta log is not contiguous: commit ${version} is missing between ${from} and version ${target}${notes}`,
      tableDir,
    );
  }
}

/**
 * The actions of every commit after `version`, in version order: what a writer that last saw
 * `version` has missed. Empty when nothing was committed since.
 */
export async function readCommitsAfter(tableInput: LakeTable | string, version: number): Promise<{ version: number; actions: LogAction[] }[]> {
  const table = asLakeTable(tableInput);
  const listing = await listDeltaLog(table, { fromVersion: version + 1 });
  const versions = [...listing.commits.keys()].filter((v) => v > version).sort((a, b) => a - b);
  versions.forEach((v, i) => {
    if (v !== version + 1 + i) throw new DeltaLogError(`the Delta log is not contiguous: commit ${version + 1 + i} is missing before ${v}`, table.location);
  });
  const out: { version: number; actions: LogAction[] }[] = [];
  for (const v of versions) out.push({ version: v, actions: await readCommitActions(table, listing.commits.get(v) as ObjectInfo, v) });
  return out;
}

async function readCommitActions(table: LakeTable, file: ObjectInfo, version: number): Promise<LogAction[]> {
  const tableDir = table.location;
  const text = (await table.store.read(file.key)).toString('utf8');
  const name = file.key.slice(file.key.lastIndexOf('/') + 1);
  const actions: LogAction[] = [];
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const line = (lines[index] as string).trim();
    if (line === '') continue;
    const description = `commit ${version} line ${index + 1}`;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      throw new DeltaLogError(`${description} is not valid JSON (${name})`, tableDir);
    }
    actions.push(...normalizeActions(parsed, line, { tableDir, localRoot: table.store.localRoot, description }));
  }
  return actions;
}
