import { PgoutputPlugin } from 'pg-logical-replication';
import type { Pgoutput } from 'pg-logical-replication';
import { describe, expect, it } from 'vitest';
import { decodeInsertValues, RowPgoutputPlugin, type RowInsertMessage } from '../../src/cdf/pgoutput-rows.ts';

// pgoutput protocol v1 messages built byte by byte (PostgreSQL docs, "Logical Replication Message Formats").
const OID = 0x9000_0001 | 0; // above 2^31: read as a negative int32 by the package, and so by the plugin
const int16 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number) => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const cstring = (s: string) => Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]);

function relationMessage(columns: string[], typeOids: number[] = columns.map(() => 25)): Buffer {
  return Buffer.concat([
    Buffer.from('R'), int32(OID), cstring('lakets_cdf'), cstring('_shadow_t'), Buffer.from('d'), int16(columns.length),
    ...columns.map((name, i) => Buffer.concat([Buffer.from([0]), cstring(name), int32(typeOids[i]!), int32(-1)])),
  ]);
}

/** Values as text, or binary when given as a Buffer. */
function insertMessage(values: (string | Buffer | null)[]): Buffer {
  return Buffer.concat([
    Buffer.from('I'), int32(OID), Buffer.from('N'), int16(values.length),
    ...values.map((v) => {
      if (v === null) return Buffer.from('n');
      const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
      return Buffer.concat([Buffer.from(typeof v === 'string' ? 't' : 'b'), int32(bytes.length), bytes]);
    }),
  ]);
}

describe('pgoutput text decoding', () => {
  const columns = ['time', 'symbol', 'price', 'note', '_change_type', '_seq'];
  const values = ['2026-11-24 12:00:00.123456+00', 'AAPL', '228.50000000000003', null, 'insert', '42'];

  it('decodes inserts into the same text values as the package, in column order', () => {
    const ours = new RowPgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
    const theirs = new PgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
    const relation = ours.parse(relationMessage(columns)) as Pgoutput.MessageRelation;
    (theirs.parse(relationMessage(columns)) as Pgoutput.MessageRelation).columns.forEach((c) => (c.parser = (raw: unknown) => raw));
    for (const row of [values, ['', 'Zürich ✓ 日本', '-0', '', 'delete', '9223372036854775807'], columns.map(() => null)]) {
      const message = ours.parse(insertMessage(row)) as unknown as RowInsertMessage;
      expect(message.tag).toBe('insert');
      expect(message.relation).toBe(relation);
      expect(message.values).toEqual(row);
      const reference = theirs.parse(insertMessage(row)) as Pgoutput.MessageInsert;
      expect(columns.map((c) => reference.new[c])).toEqual(row);
    }
  });

  it('passes every other message to the package parser', () => {
    const ours = new RowPgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
    // An insert before its relation: the package's own error.
    expect(() => ours.parse(insertMessage(values))).toThrow(/missing relation/);
    const relation = ours.parse(relationMessage(columns)) as Pgoutput.MessageRelation;
    expect(relation.tag).toBe('relation');
    // Relation columns keep their text: the parser is the identity.
    expect(relation.columns[0]!.parser('2026-11-24 12:00:00.123456+00')).toBe('2026-11-24 12:00:00.123456+00');
  });

  it('refuses malformed tuples instead of guessing', () => {
    const good = insertMessage(values);
    const texts = columns.map(() => 25);
    expect(() => decodeInsertValues(good, [...texts, 25])).toThrow(/6 values for a relation of 7 columns/);
    expect(() => decodeInsertValues(good.subarray(0, good.length - 1), texts)).toThrow(/runs past the end/);
    expect(() => decodeInsertValues(Buffer.concat([good, Buffer.from([0])]), texts)).toThrow(/trailing bytes/);
    const toast = Buffer.concat([Buffer.from('I'), int32(OID), Buffer.from('N'), int16(1), Buffer.from('u')]);
    expect(() => decodeInsertValues(toast, [25])).toThrow(/value kind "u"/);
    // Binary: a value of the wrong width, and a type the change feed does not map (numeric).
    expect(() => decodeInsertValues(insertMessage([Buffer.alloc(4)]), [701])).toThrow(/float8 value of 4 bytes/);
    expect(() => decodeInsertValues(insertMessage([Buffer.alloc(8)]), [1700])).toThrow(/type OID 1700/);
  });

  it('decodes binary values into exact numbers, bigints and microseconds', () => {
    const f8 = (n: number) => { const b = Buffer.alloc(8); b.writeDoubleBE(n); return b; };
    const f4 = (n: number) => { const b = Buffer.alloc(4); b.writeFloatBE(n); return b; };
    const i8 = (n: bigint) => { const b = Buffer.alloc(8); b.writeBigInt64BE(n); return b; };
    const i2 = (n: number) => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
    const PG_EPOCH = 946_684_800_000_000n; // 2000-01-01 in Unix microseconds
    const cases: [number, Buffer, unknown][] = [
      [701, f8(228.50000000000003), 228.50000000000003],
      [701, f8(-0), -0],
      [701, f8(Number.NaN), Number.NaN],
      [700, f4(1.1), Math.fround(1.1)],
      [20, i8(9_223_372_036_854_775_807n), 9_223_372_036_854_775_807n],
      [23, int32(-2_147_483_648), -2_147_483_648],
      [21, i2(-7), -7],
      // 2026-11-24 12:00:00.123456 UTC, and one before 2000 / before 1970.
      [1184, i8(1_795_521_600_123_456n - PG_EPOCH), { micros: 1_795_521_600_123_456n }],
      [1114, i8(-1n - PG_EPOCH), { micros: -1n }],
      [1184, i8(9_223_372_036_854_775_807n), 'infinity'],
      [1184, i8(-9_223_372_036_854_775_808n), '-infinity'],
      [16, Buffer.from([1]), 't'],
      [1082, int32(9_824), '2026-11-24'],
      [1082, int32(-10_958), '1969-12-31'],
      [25, Buffer.from('Zürich ✓', 'utf8'), 'Zürich ✓'],
    ];
    const values = decodeInsertValues(insertMessage(cases.map((c) => c[1])), cases.map((c) => c[0]));
    cases.forEach(([oid, , expected], i) => expect(values[i], `type ${oid}`).toEqual(expected));
  });
});
