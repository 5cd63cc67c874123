// Where a data file named by `add.path` / `remove.path` lives.
//
// `path` in the log is a URI reference: relative to the table folder, percent-encoded once. Spark also
// Hive-escapes partition directory names on disk (':' -> '%3A'), so the log holds that name encoded
// again ('%3A' -> '%253A', ' ' -> '%20'). Decoding the log path exactly once gives the object's name.

import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { DeltaLogError, UnsupportedDeltaFeatureError } from './errors.ts';

export interface DataFileLocation {
  /** The path decoded once: relative to the table folder (or absolute for `file:` URIs). */
  readonly path: string;
  /**
   * Absolute path on this machine for a table in a local folder; for a table on a remote store, the
   * object's URL until the file is downloaded (see withLocalFiles).
   */
  readonly localPath: string;
  /** The object's key under the table's root; null for a `file:` URI outside a local table. */
  readonly key: string | null;
}

/** The table a log belongs to: its location for messages, and its folder when it is local. */
export interface TableRoot {
  /** Local path or URL of the table. */
  readonly location: string;
  /** The table folder on a local store; undefined on a remote one. */
  readonly localRoot: string | undefined;
}

const URI_SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

export function locateDataFile(table: TableRoot | string, logPath: string): DataFileLocation {
  const root: TableRoot = typeof table === 'string' ? { location: table, localRoot: table } : table;
  const scheme = URI_SCHEME.exec(logPath)?.[1]?.toLowerCase();
  if (scheme === 'file' && root.localRoot !== undefined) {
    const localPath = fileURLToPath(new URL(logPath));
    const relative = path.relative(root.localRoot, localPath);
    const inside = relative !== '' && !relative.startsWith('..') && !path.isAbsolute(relative);
    return { path: localPath, localPath, key: inside ? relative.split(path.sep).join('/') : null };
  }
  if (scheme !== undefined) {
    // Our writers only write paths relative to the table; a table pointing elsewhere is not ours to read.
    throw new UnsupportedDeltaFeatureError(
      `data file ${JSON.stringify(logPath)} is on ${scheme}: storage; only paths relative to the table are supported here`,
      root.location,
      [`storage:${scheme}`],
    );
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(logPath);
  } catch {
    throw new DeltaLogError(`data file path ${JSON.stringify(logPath)} is not a valid percent-encoded URI`, root.location);
  }
  const segments = decoded.split('/');
  const plain = segments.every((s) => s !== '' && s !== '.' && s !== '..' && !s.includes('\\') && !s.includes('\0'));
  if (root.localRoot !== undefined) {
    return { path: decoded, localPath: path.resolve(root.localRoot, decoded), key: plain ? decoded : null };
  }
  if (!plain) throw new DeltaLogError(`data file path ${JSON.stringify(logPath)} does not name a file inside the table`, root.location);
  return { path: decoded, localPath: `${root.location}/${decoded}`, key: decoded };
}
