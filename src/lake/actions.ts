// The log actions the reader cares about, normalised from either source: a line of a JSON commit or a
// row of a Parquet checkpoint (which we turn into the same JSON shape with DuckDB's to_json).
// Everything else (commitInfo, cdc, domainMetadata, unknown future actions) is skipped: the protocol
// gate, not the parser, decides whether an unknown capability matters.

import { DeltaLogError } from './errors.ts';
import { locateDataFile, type TableRoot } from './paths.ts';
import { parseStats, type DeltaFileStats } from './stats.ts';

export interface DeltaProtocol {
  readonly minReaderVersion: number;
  readonly minWriterVersion: number;
  readonly readerFeatures?: readonly string[];
  readonly writerFeatures?: readonly string[];
}

export interface DeltaMetadataAction {
  readonly id: string;
  readonly name: string | null;
  readonly description: string | null;
  readonly format: { readonly provider: string; readonly options: Readonly<Record<string, string>> };
  readonly schemaString: string;
  readonly partitionColumns: readonly string[];
  readonly configuration: Readonly<Record<string, string>>;
  readonly createdTime: number | null;
}

export interface DeletionVectorDescriptor {
  readonly storageType: string;
  readonly pathOrInlineDv: string;
  readonly offset?: number;
  readonly sizeInBytes: number;
  readonly cardinality: number;
}

/** A live data file (an `add` action that nothing removed). */
export interface DeltaDataFile {
  /** `add.path` decoded once: the file's path relative to the table folder (absolute for file: URIs). */
  readonly path: string;
  /** `add.path` exactly as written in the log (URI-encoded). */
  readonly logPath: string;
  /**
   * Absolute path of the file on this machine; for a table on a remote store, the object's URL until
   * withLocalFiles hands out a downloaded copy.
   */
  readonly localPath: string;
  /** The object's key under the table's root (null only for a `file:` URI outside a local table). */
  readonly key: string | null;
  readonly size: number;
  /** Partition column -> serialized value, null for a null partition. */
  readonly partitionValues: Readonly<Record<string, string | null>>;
  readonly modificationTime: number;
  readonly dataChange: boolean;
  readonly stats: DeltaFileStats | null;
  readonly tags: Readonly<Record<string, string | null>>;
  readonly deletionVector: DeletionVectorDescriptor | null;
}

/** A removed data file (`remove` action) still remembered by the log for VACUUM's retention. */
export interface DeltaTombstone {
  readonly path: string;
  readonly logPath: string;
  readonly localPath: string;
  readonly key: string | null;
  readonly deletionTimestamp: number | null;
  readonly dataChange: boolean;
  readonly size: number | null;
  readonly partitionValues: Readonly<Record<string, string | null>> | null;
  readonly deletionVector: DeletionVectorDescriptor | null;
}

export type LogAction =
  | { readonly kind: 'protocol'; readonly protocol: DeltaProtocol }
  | { readonly kind: 'metaData'; readonly metaData: DeltaMetadataAction }
  | { readonly kind: 'txn'; readonly appId: string; readonly version: bigint }
  | { readonly kind: 'add'; readonly key: string; readonly file: DeltaDataFile }
  | { readonly kind: 'remove'; readonly key: string; readonly tombstone: DeltaTombstone };

/** Where an action came from, for error messages. */
export interface ActionSource {
  /** The table's location (local path or URL), for messages. */
  readonly tableDir: string;
  /** The table folder when the table is local; undefined on a remote store. Defaults to tableDir. */
  readonly localRoot?: string | undefined;
  readonly description: string;
}

function tableRootOf(source: ActionSource): TableRoot {
  return { location: source.tableDir, localRoot: 'localRoot' in source ? source.localRoot : source.tableDir };
}

/**
 * Parses one action object. `rawText` is the JSON text it was parsed from; it is needed only to recover
 * a `txn.version` above 2^53 exactly (our txn versions are Postgres LSNs, 64-bit; JSON.parse rounds them).
 */
export function normalizeActions(action: unknown, rawText: string, source: ActionSource): LogAction[] {
  if (action === null || typeof action !== 'object' || Array.isArray(action)) {
    throw new DeltaLogError(`${source.description}: an action is not a JSON object`, source.tableDir);
  }
  const out: LogAction[] = [];
  const node = action as Record<string, unknown>;
  const fail = (what: string): never => {
    throw new DeltaLogError(`${source.description}: malformed ${what} action`, source.tableDir);
  };
  const protocol = node['protocol'];
  if (isRecord(protocol)) out.push({ kind: 'protocol', protocol: parseProtocol(protocol) ?? fail('protocol') });
  const metaData = node['metaData'];
  if (isRecord(metaData)) out.push({ kind: 'metaData', metaData: parseMetadata(metaData) ?? fail('metaData') });
  const txn = node['txn'];
  if (isRecord(txn)) {
    const appId = txn['appId'];
    const version = txn['version'];
    if (typeof appId !== 'string' || typeof version !== 'number' || !Number.isInteger(version)) fail('txn');
    out.push({ kind: 'txn', appId: appId as string, version: exactInteger(version as number, 'version', rawText, source) });
  }
  const add = node['add'];
  if (isRecord(add)) {
    const file = parseAdd(add, source) ?? fail('add');
    out.push({ kind: 'add', key: fileKey(file.localPath, file.deletionVector), file });
  }
  const remove = node['remove'];
  if (isRecord(remove)) {
    const tombstone = parseRemove(remove, source) ?? fail('remove');
    out.push({ kind: 'remove', key: fileKey(tombstone.localPath, tombstone.deletionVector), tombstone });
  }
  return out;
}

/**
 * The reconciliation key of a file: the same file with and without a deletion vector are different
 * entries (a DV delete removes `(path, no DV)` and adds `(path, DV)`). Keyed on the resolved local
 * path so that a relative and an absolute reference to one file match.
 */
export function fileKey(localPath: string, deletionVector: DeletionVectorDescriptor | null): string {
  return `${localPath}\u0000${deletionVector === null ? '' : deletionVectorUniqueId(deletionVector)}`;
}

/** The protocol's DV unique id: storageType + pathOrInlineDv, plus '@offset' when an offset is given. */
export function deletionVectorUniqueId(dv: DeletionVectorDescriptor): string {
  return `${dv.storageType}${dv.pathOrInlineDv}${dv.offset === undefined ? '' : `@${dv.offset}`}`;
}

function parseProtocol(node: Record<string, unknown>): DeltaProtocol | null {
  const minReaderVersion = node['minReaderVersion'];
  const minWriterVersion = node['minWriterVersion'];
  if (typeof minReaderVersion !== 'number' || typeof minWriterVersion !== 'number') return null;
  const readerFeatures = stringArray(node['readerFeatures']);
  const writerFeatures = stringArray(node['writerFeatures']);
  return {
    minReaderVersion,
    minWriterVersion,
    ...(readerFeatures ? { readerFeatures } : {}),
    ...(writerFeatures ? { writerFeatures } : {}),
  };
}

function parseMetadata(node: Record<string, unknown>): DeltaMetadataAction | null {
  const id = node['id'];
  const schemaString = node['schemaString'];
  const format = isRecord(node['format']) ? node['format'] : {};
  if (typeof id !== 'string' || typeof schemaString !== 'string') return null;
  const partitionColumns = node['partitionColumns'] === undefined ? [] : stringArray(node['partitionColumns']);
  if (!partitionColumns) return null;
  return {
    id,
    name: typeof node['name'] === 'string' ? node['name'] : null,
    description: typeof node['description'] === 'string' ? node['description'] : null,
    format: {
      provider: typeof format['provider'] === 'string' ? format['provider'] : 'parquet',
      options: stringMap(format['options']) as Record<string, string>,
    },
    schemaString,
    partitionColumns,
    configuration: stringMap(node['configuration']) as Record<string, string>,
    createdTime: typeof node['createdTime'] === 'number' ? node['createdTime'] : null,
  };
}

function parseAdd(node: Record<string, unknown>, source: ActionSource): DeltaDataFile | null {
  const logPath = node['path'];
  const size = node['size'];
  if (typeof logPath !== 'string' || logPath.length === 0 || typeof size !== 'number') return null;
  const location = locateDataFile(tableRootOf(source), logPath);
  return {
    path: location.path,
    logPath,
    localPath: location.localPath,
    key: location.key,
    size,
    partitionValues: stringMap(node['partitionValues']),
    modificationTime: typeof node['modificationTime'] === 'number' ? node['modificationTime'] : 0,
    dataChange: node['dataChange'] !== false,
    stats: parseStats(node['stats'], node['stats_parsed']),
    tags: stringMap(node['tags']),
    deletionVector: parseDeletionVector(node['deletionVector']),
  };
}

function parseRemove(node: Record<string, unknown>, source: ActionSource): DeltaTombstone | null {
  const logPath = node['path'];
  if (typeof logPath !== 'string' || logPath.length === 0) return null;
  const location = locateDataFile(tableRootOf(source), logPath);
  return {
    path: location.path,
    logPath,
    localPath: location.localPath,
    key: location.key,
    deletionTimestamp: typeof node['deletionTimestamp'] === 'number' ? node['deletionTimestamp'] : null,
    dataChange: node['dataChange'] !== false,
    size: typeof node['size'] === 'number' ? node['size'] : null,
    partitionValues: isRecord(node['partitionValues']) ? stringMap(node['partitionValues']) : null,
    deletionVector: parseDeletionVector(node['deletionVector']),
  };
}

function parseDeletionVector(raw: unknown): DeletionVectorDescriptor | null {
  if (!isRecord(raw)) return null; // absent, or null in a checkpoint row
  const { storageType, pathOrInlineDv, offset, sizeInBytes, cardinality } = raw;
  return {
    storageType: String(storageType),
    pathOrInlineDv: String(pathOrInlineDv),
    ...(typeof offset === 'number' ? { offset } : {}),
    sizeInBytes: typeof sizeInBytes === 'number' ? sizeInBytes : 0,
    cardinality: typeof cardinality === 'number' ? cardinality : 0,
  };
}

/** JSON objects of string values (partitionValues, configuration, tags). Non-strings become strings. */
function stringMap(raw: unknown): Record<string, string | null> {
  const out: Record<string, string | null> = {};
  if (!isRecord(raw)) return out;
  for (const [key, value] of Object.entries(raw)) {
    out[key] = value === null || value === undefined ? null : typeof value === 'string' ? value : JSON.stringify(value);
  }
  return out;
}

function stringArray(raw: unknown): string[] | undefined {
  if (!Array.isArray(raw)) return undefined;
  return raw.filter((item): item is string => typeof item === 'string');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * `parsed` is what JSON.parse made of an integer field; when it is beyond 2^53 the digits are read
 * back from the JSON text. Only digit strings that round to the same double are candidates, and they
 * must agree, otherwise we cannot be sure which one it was and refuse.
 */
function exactInteger(parsed: number, field: string, rawText: string, source: ActionSource): bigint {
  if (Number.isSafeInteger(parsed)) return BigInt(parsed);
  const pattern = new RegExp(`"${field}"\\s*:\\s*(-?\\d+)(?![\\d.eE])`, 'g');
  const candidates = new Set<string>();
  for (const match of rawText.matchAll(pattern)) {
    const digits = match[1] as string;
    if (Number(digits) === parsed) candidates.add(BigInt(digits).toString());
  }
  const [only] = candidates;
  if (candidates.size !== 1 || only === undefined) {
    throw new DeltaLogError(`${source.description}: cannot read ${field} ${parsed} exactly`, source.tableDir);
  }
  return BigInt(only);
}
