// pgoutput messages with every value left as the text Postgres sent, and inserts decoded straight
// into an array (no JS Date that would drop microseconds, no float parsing, no object per row).
//
// Inserts are nearly all the change feed carries (the shadow table is append-only); decoding them
// here rather than through the package's generic tuple reader (a Buffer view, a TextDecoder call and
// a keyed object per value) took about a third of the sync's main-thread time off a backlog drain.
// Every other message goes through the package's parser.

import { PgoutputPlugin } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';

/** An insert: the new row's values as text (null for SQL NULL), in the relation's column order. */
export interface TextInsertMessage {
  tag: 'insert';
  relation: Pgoutput.MessageRelation;
  values: (string | null)[];
}

export type TextPgoutputMessage = Exclude<Pgoutput.Message, Pgoutput.MessageInsert> | TextInsertMessage;

const INSERT = 0x49; // 'I'
const NEW_TUPLE = 0x4e; // 'N'
const TEXT = 0x74; // 't'
const NULL = 0x6e; // 'n'

function malformed(what: string): never {
  throw new Error(`malformed pgoutput insert message: ${what}`);
}

/** The values of an insert message ('I', relation OID, 'N', TupleData) of a relation with `width` columns. */
export function decodeInsertValues(buffer: Buffer, width: number): (string | null)[] {
  if (buffer.length < 8) malformed('too short');
  let p = 6;
  const count = buffer.readInt16BE(p);
  p += 2;
  if (count !== width) malformed(`${count} values for a relation of ${width} columns`);
  const values: (string | null)[] = new Array(count);
  for (let i = 0; i < count; i++) {
    if (p >= buffer.length) malformed('truncated');
    const kind = buffer[p++];
    if (kind === TEXT) {
      if (p + 4 > buffer.length) malformed('truncated');
      const length = buffer.readInt32BE(p);
      p += 4;
      if (length < 0 || p + length > buffer.length) malformed('value runs past the end');
      values[i] = buffer.toString('utf8', p, p + length);
      p += length;
    } else if (kind === NULL) {
      values[i] = null;
    } else {
      // 'u' (unchanged TOAST) happens only in updates, 'b' only when binary output was asked for.
      malformed(`value kind ${JSON.stringify(String.fromCharCode(kind ?? 0))}`);
    }
  }
  if (p !== buffer.length) malformed('trailing bytes');
  return values;
}

export class TextPgoutputPlugin extends PgoutputPlugin {
  private readonly relations = new Map<number, Pgoutput.MessageRelation>();

  override parse(buffer: Buffer): Pgoutput.Message {
    if (buffer[0] === INSERT && buffer[5] === NEW_TUPLE) {
      // The package reads the OID as a signed 32-bit integer; so does this, to share its keys.
      const relation = this.relations.get(buffer.readInt32BE(1));
      if (relation) {
        const message: TextInsertMessage = { tag: 'insert', relation, values: decodeInsertValues(buffer, relation.columns.length) };
        return message as unknown as Pgoutput.Message;
      }
    }
    const message = super.parse(buffer);
    if (message.tag === 'relation') {
      for (const column of message.columns) column.parser = (raw: unknown) => raw;
      this.relations.set(message.relationOid, message);
    }
    return message;
  }
}
