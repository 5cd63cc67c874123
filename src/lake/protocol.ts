// The protocol gate: decides whether this reader may read a table at all. Delta tells readers what they
// must understand through `protocol` (minReaderVersion, readerFeatures) and a few table properties.
// Reading a table while ignoring a required capability returns wrong rows silently (a deletion vector
// ignored resurrects deleted rows; column mapping ignored reads the wrong Parquet columns), so anything
// not on the list below is refused with UnsupportedDeltaFeatureError.

import type { DeltaProtocol } from './actions.ts';
import { UnsupportedDeltaFeatureError } from './errors.ts';

/** Reader version 3 = "reader table features": what is needed is listed in `readerFeatures`. */
export const MAX_SUPPORTED_READER_VERSION = 3;

/**
 * Reader features we implement:
 * - timestampNtz: `timestamp_ntz` columns and partition values are read as naive DuckDB TIMESTAMPs.
 * - vacuumProtocolCheck: only constrains VACUUM; a plain reader has nothing to do.
 */
export const SUPPORTED_READER_FEATURES: ReadonlySet<string> = new Set(['timestampNtz', 'vacuumProtocolCheck']);

const COLUMN_MAPPING_MODE = 'delta.columnMapping.mode';

/** Throws UnsupportedDeltaFeatureError when the table needs anything this reader does not implement. */
export function assertReadableProtocol(
  protocol: DeltaProtocol,
  configuration: Readonly<Record<string, string | null>>,
  tableDir: string,
): void {
  const refuse = (why: string, features: string[]): never => {
    throw new UnsupportedDeltaFeatureError(`cannot read Delta table ${tableDir}: ${why}`, tableDir, features);
  };
  const { minReaderVersion } = protocol;
  if (!Number.isInteger(minReaderVersion) || minReaderVersion < 1) {
    refuse(`invalid minReaderVersion ${String(minReaderVersion)}`, [`minReaderVersion=${String(minReaderVersion)}`]);
  }
  if (minReaderVersion > MAX_SUPPORTED_READER_VERSION) {
    refuse(
      `it requires reader version ${minReaderVersion}, this reader supports up to ${MAX_SUPPORTED_READER_VERSION}`,
      [`minReaderVersion=${minReaderVersion}`],
    );
  }
  // Features only have meaning at reader version 3, but a list that names one we lack is refused at any
  // version: failing closed costs a clear error, failing open costs wrong rows.
  {
    const unsupported = (protocol.readerFeatures ?? []).filter((feature) => !SUPPORTED_READER_FEATURES.has(feature));
    if (unsupported.length > 0) {
      refuse(
        `it requires reader features [${unsupported.join(', ')}], this reader supports only [${[...SUPPORTED_READER_FEATURES].join(', ')}]`,
        unsupported,
      );
    }
  }
  // Reader version 2 exists for column mapping. With the mode off, physical names equal logical ones and
  // the files read as usual; any other mode (name, id) renames Parquet columns, which we do not follow.
  const mappingMode = configuration[COLUMN_MAPPING_MODE];
  if (mappingMode !== undefined && mappingMode !== null && mappingMode !== 'none') {
    refuse(`column mapping mode '${mappingMode}' is not supported`, ['columnMapping']);
  }
}
