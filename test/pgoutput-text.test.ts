import { PgoutputPlugin } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import { decodeInsertValues, TextPgoutputPlugin, type TextInsertMessage } from '../jobs/pgoutput-text.ts';

// pgoutput protocol v1 messages built byte by byte (PostgreSQL docs, "Logical Replication Message Formats").
const OID = 0x9000_0001 | 0; // above 2^31: read as a negative int32 by the package, and so by the plugin
const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const cstring = (s: string) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);

function relationMessage(columns: string[]): Buffer {
  return Buffer.concat([
    Buffer.from('R'), int32(OID), cstring('lakets_cdf'), cstring('_shadow_t'), Buffer.from('d'), int16(columns.length),
    ...columns.map((name) => Buffer.concat([Buffer.from([0]), cstring(name), int32(25), int32(-1)])),
  ]);
}

function insertMessage(values: (string | null)[]): Buffer {
  return Buffer.concat([
    Buffer.from('I'), int32(OID), Buffer.from('N'), int16(values.length),
    ...values.map((v) => {
      if (v === null) return Buffer.from('n');
      const bytes = Buffer.from(v, 'utf8');
      return Buffer.concat([Buffer.from('t'), int32(bytes.length), bytes]);
    }),
  ]);
}

describe('pgoutput text decoding', () => {
  const columns = ['time', 'symbol', 'price', 'note', '_change_type', '_seq'];
  const values = ['2026-11-24 12:00:00.123456+00', 'AAPL', '228.50000000000003', null, 'insert', '42'];

  it('decodes inserts into the same text values as the package, in column order', () => {
    const ours = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
    const theirs = new PgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
    const relation = ours.parse(relationMessage(columns)) as Pgoutput.MessageRelation;
    (theirs.parse(relationMessage(columns)) as Pgoutput.MessageRelation).columns.forEach((c) => (c.parser = (raw: unknown) => raw));
    for (const row of [values, ['', 'Zürich ✓ 日本', '-0', '', 'delete', '9223372036854775807'], columns.map(() => null)]) {
      const message = ours.parse(insertMessage(row)) as unknown as TextInsertMessage;
      expect(message.tag).toBe('insert');
      expect(message.relation).toBe(relation);
      expect(message.values).toEqual(row);
      const reference = theirs.parse(insertMessage(row)) as Pgoutput.MessageInsert;
      expect(columns.map((c) => reference.new[c])).toEqual(row);
    }
  });

  it('passes every other message to the package parser', () => {
    const ours = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
    // An insert before its relation: the package's own error.
    expect(() => ours.parse(insertMessage(values))).toThrow(/missing relation/);
    const relation = ours.parse(relationMessage(columns)) as Pgoutput.MessageRelation;
    expect(relation.tag).toBe('relation');
    // Relation columns keep their text: the parser is the identity.
    expect(relation.columns[0]!.parser('2026-11-24 12:00:00.123456+00')).toBe('2026-11-24 12:00:00.123456+00');
  });

  it('refuses malformed tuples instead of guessing', () => {
    const good = insertMessage(values);
    expect(() => decodeInsertValues(good, columns.length + 1)).toThrow(/6 values for a relation of 7 columns/);
    expect(() => decodeInsertValues(good.subarray(0, good.length - 1), columns.length)).toThrow(/runs past the end/);
    expect(() => decodeInsertValues(Buffer.concat([good, Buffer.from([0])]), columns.length)).toThrow(/trailing bytes/);
    const toast = Buffer.concat([Buffer.from('I'), int32(OID), Buffer.from('N'), int16(1), Buffer.from('u')]);
    expect(() => decodeInsertValues(toast, 1)).toThrow(/value kind "u"/);
  });
});
