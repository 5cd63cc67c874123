// pgoutput messages for the change feed: inserts decoded straight into arrays of lake values.
//
// Inserts are nearly all the change feed carries (the shadow table is append-only). Decoding them
// here rather than through the package's generic tuple reader (a Buffer view, a TextDecoder call and
// a keyed object per value) took about a third of the sync's main-thread time off a backlog drain.
// In binary mode (pgoutput's `binary` option, PostgreSQL 14+) the walsender sends each value's binary
// form instead of running the type's text output function — the most expensive part of its work
// per row after decoding — and numbers and timestamps arrive ready for the lake writer (LakeValue:
// number, bigint, microseconds), exact, with no text in between. Text values are kept as the text
// Postgres sent (never a JS Date: it would drop microseconds). Every other message goes through the
// package's parser.

import { PgoutputPlugin } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import type { Client } from 'pg';
import type { LakeValue } from '../lake/writer.ts';

/** An insert: the new row's values (null for SQL NULL), in the relation's column order. */
export interface RowInsertMessage {
  tag: 'insert';
  relation: Pgoutput.MessageRelation;
  values: LakeValue[];
}

export type RowPgoutputMessage = Exclude<Pgoutput.Message, Pgoutput.MessageInsert> | RowInsertMessage;

export interface RowPgoutputOptions extends Pgoutput.Options {
  /** Ask for binary values (PostgreSQL 14+). */
  binary?: boolean;
}

const INSERT = 0x49; // 'I'
const NEW_TUPLE = 0x4e; // 'N'
const TEXT = 0x74; // 't'
const BINARY = 0x62; // 'b'
const NULL = 0x6e; // 'n'

/** Microseconds from 1970-01-01 to 2000-01-01, Postgres's timestamp epoch. */
const PG_EPOCH_MICROS = 946_684_800_000_000n;
const PG_EPOCH_DAYS = 10_957;
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

type BinaryDecoder = (buffer: Buffer, at: number, length: number) => LakeValue;

function expectLength(length: number, expected: number, type: string): void {
  if (length !== expected) malformed(`a ${type} value of ${length} bytes`);
}

function timestampDecoder(type: string): BinaryDecoder {
  return (b, at, length) => {
    expectLength(length, 8, type);
    const v = b.readBigInt64BE(at);
    // ±infinity are the int64 extremes; as text they go to the writer's SQL cast.
    if (v === INT64_MAX) return 'infinity';
    if (v === INT64_MIN) return '-infinity';
    return { micros: v + PG_EPOCH_MICROS };
  };
}

/** Binary decoders by type OID: the types the change feed maps (src/lake/change-feed-table.ts). */
const BINARY_DECODERS: ReadonlyMap<number, BinaryDecoder> = new Map<number, BinaryDecoder>([
  [701, (b, at, length) => (expectLength(length, 8, 'float8'), b.readDoubleBE(at))],
  [700, (b, at, length) => (expectLength(length, 4, 'float4'), b.readFloatBE(at))],
  [20, (b, at, length) => (expectLength(length, 8, 'int8'), b.readBigInt64BE(at))],
  [23, (b, at, length) => (expectLength(length, 4, 'int4'), b.readInt32BE(at))],
  [21, (b, at, length) => (expectLength(length, 2, 'int2'), b.readInt16BE(at))],
  [1184, timestampDecoder('timestamptz')],
  [1114, timestampDecoder('timestamp')],
  [16, (b, at, length) => (expectLength(length, 1, 'bool'), b[at] ? 't' : 'f')],
  [1082, (b, at, length) => {
    expectLength(length, 4, 'date');
    const days = b.readInt32BE(at);
    if (days === 2_147_483_647) return 'infinity';
    if (days === -2_147_483_648) return '-infinity';
    // The text form Postgres prints (ISO); years before 1 or after 9999 go through their own digits.
    const iso = new Date((days + PG_EPOCH_DAYS) * 86_400_000).toISOString();
    return iso.length === 24 ? iso.slice(0, 10) : malformed(`a date outside years 1-9999`);
  }],
  ...[25, 1043, 1042].map((oid): [number, BinaryDecoder] => [oid, (b, at, length) => b.toString('utf8', at, at + length)]),
]);

function malformed(what: string): never {
  throw new Error(`malformed pgoutput insert message: ${what}`);
}

/** The binary decoder of each column (undefined: a type the change feed does not map). */
function decodersOf(typeOids: readonly number[]): (BinaryDecoder | undefined)[] {
  return typeOids.map((oid) => BINARY_DECODERS.get(oid));
}

/**
 * The values of an insert message ('I', relation OID, 'N', TupleData) of a relation whose columns
 * have these type OIDs (binary values need them); `decoders` (decodersOf) when known per relation.
 */
export function decodeInsertValues(
  buffer: Buffer,
  typeOids: readonly number[],
  decoders: readonly (BinaryDecoder | undefined)[] = decodersOf(typeOids),
): LakeValue[] {
  if (buffer.length < 8) malformed('too short');
  let p = 6;
  const count = buffer.readInt16BE(p);
  p += 2;
  if (count !== typeOids.length) malformed(`${count} values for a relation of ${typeOids.length} columns`);
  const values: LakeValue[] = new Array(count);
  for (let i = 0; i < count; i++) {
    if (p >= buffer.length) malformed('truncated');
    const kind = buffer[p++];
    if (kind === TEXT || kind === BINARY) {
      if (p + 4 > buffer.length) malformed('truncated');
      const length = buffer.readInt32BE(p);
      p += 4;
      if (length < 0 || p + length > buffer.length) malformed('value runs past the end');
      if (kind === TEXT) values[i] = buffer.toString('utf8', p, p + length);
      else {
        const decode = decoders[i];
        if (!decode) malformed(`a binary value of type OID ${typeOids[i]}, which the change feed does not map`);
        values[i] = decode(buffer, p, length);
      }
      p += length;
    } else if (kind === NULL) {
      values[i] = null;
    } else {
      // 'u' (unchanged TOAST) happens only in updates.
      malformed(`value kind ${JSON.stringify(String.fromCharCode(kind ?? 0))}`);
    }
  }
  if (p !== buffer.length) malformed('trailing bytes');
  return values;
}

export class RowPgoutputPlugin extends PgoutputPlugin {
  private readonly relations = new Map<
    number,
    { relation: Pgoutput.MessageRelation; typeOids: number[]; decoders: (BinaryDecoder | undefined)[] }
  >();
  private readonly binary: boolean;

  constructor(options: RowPgoutputOptions) {
    super(options);
    this.binary = options.binary ?? false;
  }

  override start(client: Client, slotName: string, lastLsn: string): Promise<unknown> {
    if (!this.binary) return super.start(client, slotName, lastLsn);
    const options = [
      `proto_version '${this.options.protoVersion}'`,
      `publication_names '${this.options.publicationNames.join(',')}'`,
      `messages '${this.options.messages ?? false}'`,
      `binary 'true'`,
    ];
    return client.query(`START_REPLICATION SLOT "${slotName}" LOGICAL ${lastLsn} (${options.join(', ')})`);
  }

  override parse(buffer: Buffer): Pgoutput.Message {
    if (buffer[0] === INSERT && buffer[5] === NEW_TUPLE) {
      // The package reads the OID as a signed 32-bit integer; so does this, to share its keys.
      const known = this.relations.get(buffer.readInt32BE(1));
      if (known) {
        const values = decodeInsertValues(buffer, known.typeOids, known.decoders);
        const message: RowInsertMessage = { tag: 'insert', relation: known.relation, values };
        return message as unknown as Pgoutput.Message;
      }
    }
    const message = super.parse(buffer);
    if (message.tag === 'relation') {
      for (const column of message.columns) column.parser = (raw: unknown) => raw;
      const typeOids = message.columns.map((c) => c.typeOid);
      this.relations.set(message.relationOid, { relation: message, typeOids, decoders: decodersOf(typeOids) });
    }
    return message;
  }
}
