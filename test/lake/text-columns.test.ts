// The native conversions of text-columns.ts against DuckDB's own casts of the same text: a value
// converted in JS must be exactly what the cast would have produced, and refused where it refuses.

import { describe, expect, it } from 'vitest';
import { queryRows } from '../../src/lake/duckdb.ts';
import { quoteLiteral } from '../../src/lake/sql.ts';
import { bigintFromText, columnLoader, doubleFromText, isPlainTimestampText, microsFromText } from '../../src/lake/text-columns.ts';

let seed = 11;
const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648;

/** One DuckDB query casting every text to `type`, as epoch microseconds for timestamps. */
async function duckCasts(texts: string[], type: string): Promise<unknown[]> {
  const expr = type.startsWith('TIMESTAMP') ? `epoch_us(CAST(v AS ${type}))` : `CAST(v AS ${type})`;
  const rows = await queryRows(
    `SELECT ${expr} AS x FROM (VALUES ${texts.map((t, i) => `(${i}, ${quoteLiteral(t)})`).join(', ')}) AS t(i, v) ORDER BY i`,
  );
  return rows.map((r) => r['x']);
}

describe('lake text columns', () => {
  it('convert doubles exactly as DuckDB casts them', async () => {
    const texts = ['0', '-0', '1.5', '228.50000000000003', '1e+100', '-2.2250738585072014e-308', '5e-324', 'NaN', 'Infinity', '-Infinity', '.5', '7.'];
    for (let i = 0; i < 2_000; i++) texts.push(String((random() - 0.5) * 10 ** Math.floor(random() * 40 - 20)));
    const expected = await duckCasts(texts, 'DOUBLE');
    texts.forEach((t, i) => expect(Object.is(doubleFromText(t), expected[i]) || (Number.isNaN(expected[i]) && Number.isNaN(doubleFromText(t))), t).toBe(true));
    for (const bad of ['', 'abc', '1.5x', '0x10', '1,5']) expect(() => doubleFromText(bad), bad).toThrow(/could not convert/);
  });

  it('convert bigints exactly and refuse out-of-range or non-integer text', async () => {
    const texts = ['0', '-1', '42', '9223372036854775807', '-9223372036854775808', '000123'];
    const expected = await duckCasts(texts, 'BIGINT');
    texts.forEach((t, i) => expect(bigintFromText(t), t).toBe(expected[i]));
    for (const bad of ['', '1.0', '9223372036854775808', '0x1', '1e3']) expect(() => bigintFromText(bad), bad).toThrow(/could not convert/);
  });

  it('convert plain UTC timestamps to the microseconds DuckDB gives', async () => {
    const texts = ['2026-11-24 12:00:00+00', '2026-11-24 12:00:00.5+00', '2026-11-24 12:00:00.000001+00', '1000-01-01 00:00:00+00',
                   '1969-12-31 23:59:59.999999+00', '2024-02-29 23:59:59.123+00', '9999-12-31 23:59:59.999999+00'];
    for (let i = 0; i < 2_000; i++) {
      const micros = BigInt(Math.floor((random() - 0.3) * 6e15));
      const date = new Date(Number(micros / 1000n));
      if (date.getUTCFullYear() < 1000) continue;
      const fraction = (((micros % 1_000_000n) + 1_000_000n) % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
      texts.push(`${date.toISOString().slice(0, 19).replace('T', ' ')}${fraction ? `.${fraction}` : ''}+00`);
    }
    const expected = await duckCasts(texts, 'TIMESTAMPTZ');
    texts.forEach((t, i) => {
      expect(isPlainTimestampText(t, true), t).toBe(true);
      expect(microsFromText(t, true), t).toBe(expected[i]);
    });
    const naive = ['2026-11-24 12:00:00.25', '2001-01-01 00:00:00'];
    const expectedNaive = await duckCasts(naive, 'TIMESTAMP');
    naive.forEach((t, i) => expect(microsFromText(t, false), t).toBe(expectedNaive[i]));
    expect(() => microsFromText('2026-02-30 00:00:00+00', true)).toThrow(/could not convert/);
    expect(() => microsFromText('2025-02-29 00:00:00+00', true)).toThrow(/could not convert/);
  });

  it('leave any other timestamp text to the SQL cast, for the whole column', () => {
    for (const other of ['2026-11-24 17:30:00+05:30', '2026-11-24 12:00:00-05', 'infinity', '0099-01-01 00:00:00+00', '2000-01-01 00:00:00+00 BC', '2026-11-24T12:00:00Z']) {
      expect(isPlainTimestampText(other, true), other).toBe(false);
    }
    const rows = [['2026-11-24 12:00:00+00'], ['2026-11-24 17:30:00+05:30']];
    expect(columnLoader('timestamp', rows, 0).castInSql).toBe(true);
    expect(columnLoader('timestamp', rows.slice(0, 1), 0).castInSql).toBe(false);
    expect(columnLoader('float', rows, 0).castInSql).toBe(true);
    expect(columnLoader('string', rows, 0).castInSql).toBe(false);
    expect(columnLoader('string', rows, 0).convert).toBeUndefined();
  });
});
