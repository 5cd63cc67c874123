// Per-file statistics from `add.stats`: a JSON string in commits and classic checkpoints, or an
// already-structured `stats_parsed` column in checkpoints written with writeStatsAsStruct.

export interface DeltaFileStats {
  /** Rows in the file; absent when the writer did not count them. */
  readonly numRecords?: number;
  readonly minValues?: Readonly<Record<string, unknown>>;
  readonly maxValues?: Readonly<Record<string, unknown>>;
  readonly nullCount?: Readonly<Record<string, unknown>>;
  /** false after a deletion vector was added: min/max may then be wider than the live rows. */
  readonly tightBounds?: boolean;
}

/**
 * Stats are advisory (data skipping, quick counts). A malformed stats string must not make the table
 * unreadable, so it yields null just like absent stats.
 */
export function parseStats(stats: unknown, statsParsed?: unknown): DeltaFileStats | null {
  let raw: unknown = null;
  if (typeof stats === 'string' && stats.length > 0) {
    try {
      raw = JSON.parse(stats);
    } catch {
      return null;
    }
  } else if (statsParsed !== null && typeof statsParsed === 'object') {
    raw = statsParsed;
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return null;
  const node = raw as Record<string, unknown>;
  const out: {
    numRecords?: number;
    minValues?: Record<string, unknown>;
    maxValues?: Record<string, unknown>;
    nullCount?: Record<string, unknown>;
    tightBounds?: boolean;
  } = {};
  if (typeof node['numRecords'] === 'number') out.numRecords = node['numRecords'];
  if (isRecord(node['minValues'])) out.minValues = node['minValues'];
  if (isRecord(node['maxValues'])) out.maxValues = node['maxValues'];
  if (isRecord(node['nullCount'])) out.nullCount = node['nullCount'];
  if (typeof node['tightBounds'] === 'boolean') out.tightBounds = node['tightBounds'];
  return out;
}

/**
 * The live row count from `numRecords` alone, without opening a data file; null when any live file
 * lacks the count (then only a scan can tell).
 */
export function rowCountFromStats(files: readonly { readonly stats: DeltaFileStats | null }[]): number | null {
  let total = 0;
  for (const file of files) {
    const count = file.stats?.numRecords;
    if (count === undefined) return null;
    total += count;
  }
  return total;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
