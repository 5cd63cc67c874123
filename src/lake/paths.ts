// Where a data file named by `add.path` / `remove.path` lives on disk.
//
// `path` in the log is a URI reference: relative to the table folder, percent-encoded once. Spark also
// Hive-escapes partition directory names on disk (':' -> '%3A'), so the log holds that name encoded
// again ('%3A' -> '%253A', ' ' -> '%20'). Decoding the log path exactly once gives the on-disk name.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeltaLogError, UnsupportedDeltaFeatureError } from './errors.ts';

export interface DataFileLocation {
  /** The path decoded once: relative to the table folder (or absolute for `file:` URIs). */
  readonly path: string;
  /** Absolute path on this machine. */
  readonly localPath: string;
}

const URI_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

export function locateDataFile(tableDir: string, logPath: string): DataFileLocation {
  const scheme = URI_SCHEME.exec(logPath)?.[1]?.toLowerCase();
  if (scheme === 'file') {
    const localPath = fileURLToPath(new URL(logPath));
    return { path: localPath, localPath };
  }
  if (scheme !== undefined) {
    // The lake is local-disk only (docs/ARCHITECTURE.md H13); a table pointing into object storage is not ours to read.
    throw new UnsupportedDeltaFeatureError(
      `data file ${JSON.stringify(logPath)} is on ${scheme}: storage; only local files are supported`,
      tableDir,
      [`storage:${scheme}`],
    );
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(logPath);
  } catch {
    throw new DeltaLogError(`data file path ${JSON.stringify(logPath)} is not a valid percent-encoded URI`, tableDir);
  }
  return { path: decoded, localPath: path.resolve(tableDir, decoded) };
}
