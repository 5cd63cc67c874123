// The table schema: Delta's `schemaString` (Spark's StructType JSON) parsed into types, and the DuckDB
// type each Delta type is read as.

import { quoteIdentifier } from './sql.ts';

export type DeltaPrimitiveTypeName =
  | 'string'
  | 'long'
  | 'integer'
  | 'short'
  | 'byte'
  | 'float'
  | 'double'
  | 'boolean'
  | 'binary'
  | 'date'
  | 'timestamp'
  | 'timestamp_ntz';

export interface DeltaDecimalType {
  readonly type: 'decimal';
  readonly precision: number;
  readonly scale: number;
}
export interface DeltaStructField {
  readonly name: string;
  readonly type: DeltaDataType;
  readonly nullable: boolean;
  readonly metadata: Readonly<Record<string, unknown>>;
}
export interface DeltaStructType {
  readonly type: 'struct';
  readonly fields: readonly DeltaStructField[];
}
export interface DeltaArrayType {
  readonly type: 'array';
  readonly elementType: DeltaDataType;
  readonly containsNull: boolean;
}
export interface DeltaMapType {
  readonly type: 'map';
  readonly keyType: DeltaDataType;
  readonly valueType: DeltaDataType;
  readonly valueContainsNull: boolean;
}
export type DeltaDataType = DeltaPrimitiveTypeName | DeltaDecimalType | DeltaStructType | DeltaArrayType | DeltaMapType;

const DUCKDB_TYPE_OF_PRIMITIVE: Readonly<Record<DeltaPrimitiveTypeName, string>> = {
  string: 'VARCHAR',
  long: 'BIGINT',
  integer: 'INTEGER',
  short: 'SMALLINT',
  byte: 'TINYINT',
  float: 'FLOAT',
  double: 'DOUBLE',
  boolean: 'BOOLEAN',
  binary: 'BLOB',
  date: 'DATE',
  // Delta `timestamp` is an instant (stored adjusted to UTC); `timestamp_ntz` is a wall-clock value.
  timestamp: 'TIMESTAMPTZ',
  timestamp_ntz: 'TIMESTAMP',
};

/** Thrown by the parser for a type we cannot read; the snapshot turns it into UnsupportedDeltaFeatureError. */
export class UnsupportedDeltaTypeError extends Error {
  override readonly name: string = 'UnsupportedDeltaTypeError';
  constructor(readonly typeName: string) {
    super(`unsupported Delta data type ${JSON.stringify(typeName)}`);
  }
}

/** Parses `metaData.schemaString`. Malformed JSON throws a plain Error; unknown types throw UnsupportedDeltaTypeError. */
export function parseSchemaString(schemaString: string): DeltaStructType {
  const parsed: unknown = JSON.parse(schemaString);
  const type = parseDataType(parsed);
  if (typeof type === 'string' || type.type !== 'struct') throw new Error('the table schema is not a struct type');
  return type;
}

function parseDataType(raw: unknown): DeltaDataType {
  if (typeof raw === 'string') {
    if (Object.hasOwn(DUCKDB_TYPE_OF_PRIMITIVE, raw)) return raw as DeltaPrimitiveTypeName;
    const decimal = /^decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)$/.exec(raw);
    if (decimal) {
      const precision = Number(decimal[1]);
      const scale = Number(decimal[2]);
      // DuckDB's DECIMAL stops at 38 digits, which is also Delta's limit.
      if (precision < 1 || precision > 38 || scale > precision) throw new UnsupportedDeltaTypeError(raw);
      return { type: 'decimal', precision, scale };
    }
    throw new UnsupportedDeltaTypeError(raw);
  }
  if (raw === null || typeof raw !== 'object') throw new Error(`malformed type in schema: ${JSON.stringify(raw)}`);
  const node = raw as Record<string, unknown>;
  switch (node['type']) {
    case 'struct': {
      if (!Array.isArray(node['fields'])) throw new Error('struct type without fields in schema');
      return { type: 'struct', fields: node['fields'].map(parseField) };
    }
    case 'array':
      return { type: 'array', elementType: parseDataType(node['elementType']), containsNull: node['containsNull'] !== false };
    case 'map':
      return {
        type: 'map',
        keyType: parseDataType(node['keyType']),
        valueType: parseDataType(node['valueType']),
        valueContainsNull: node['valueContainsNull'] !== false,
      };
    default:
      throw new UnsupportedDeltaTypeError(JSON.stringify(node['type']));
  }
}

function parseField(raw: unknown): DeltaStructField {
  if (raw === null || typeof raw !== 'object') throw new Error('malformed struct field in schema');
  const node = raw as Record<string, unknown>;
  if (typeof node['name'] !== 'string') throw new Error('struct field without a name in schema');
  const metadata = node['metadata'];
  return {
    name: node['name'],
    type: parseDataType(node['type']),
    nullable: node['nullable'] !== false,
    metadata: metadata !== null && typeof metadata === 'object' ? (metadata as Record<string, unknown>) : {},
  };
}

/** The DuckDB type a Delta type is read as, e.g. `decimal(10,2)` -> `DECIMAL(10,2)`, `timestamp` -> `TIMESTAMPTZ`. */
export function duckdbTypeOf(type: DeltaDataType): string {
  if (typeof type === 'string') return DUCKDB_TYPE_OF_PRIMITIVE[type];
  switch (type.type) {
    case 'decimal':
      return `DECIMAL(${type.precision},${type.scale})`;
    case 'array':
      return `${duckdbTypeOf(type.elementType)}[]`;
    case 'map':
      return `MAP(${duckdbTypeOf(type.keyType)}, ${duckdbTypeOf(type.valueType)})`;
    case 'struct':
      return `STRUCT(${type.fields.map((field) => `${quoteIdentifier(field.name)} ${duckdbTypeOf(field.type)}`).join(', ')})`;
  }
}

/** True for the Delta types that may hold a partition column (everything but struct, array and map). */
export function isPrimitiveType(type: DeltaDataType): type is DeltaPrimitiveTypeName | DeltaDecimalType {
  return typeof type === 'string' || type.type === 'decimal';
}

/** Every type name used anywhere in the schema, nested ones included (for the protocol gate). */
export function collectTypeNames(type: DeltaDataType, into: Set<string> = new Set()): Set<string> {
  if (typeof type === 'string') into.add(type);
  else if (type.type === 'decimal') into.add('decimal');
  else if (type.type === 'array') collectTypeNames(type.elementType, into);
  else if (type.type === 'map') {
    collectTypeNames(type.keyType, into);
    collectTypeNames(type.valueType, into);
  } else for (const field of type.fields) collectTypeNames(field.type, into);
  return into;
}
