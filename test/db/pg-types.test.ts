import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { apiTypes, parseTimestamptz } from '../../src/db/pg-types.ts';
import { useTestContext } from '../helpers/context.ts';

const pgParser = pg.types.getTypeParser(1184, 'text') as (v: string) => Date | number;

/** Postgres's text for a UTC session: trailing zeros of the fraction stripped. */
function utcText(micros: bigint): string {
  const date = new Date(Number(micros / 1000n));
  const fraction = (((micros % 1_000_000n) + 1_000_000n) % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '');
  return `${date.toISOString().slice(0, 19).replace('T', ' ')}${fraction ? `.${fraction}` : ''}+00`;
}

describe('API timestamptz parsing', () => {
  it('gives the same instant as pg for 200,000 random UTC timestamps with microseconds', () => {
    let seed = 7;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648);
    for (let i = 0; i < 200_000; i++) {
      const micros = BigInt(Math.floor(random() * 4e9)) * 1_000_000n + BigInt(Math.floor(random() * 1e6));
      const text = utcText(micros);
      expect(parseTimestamptz(text).getTime(), text).toBe((pgParser(text) as Date).getTime());
    }
  });

  it('falls back to pg for everything off the fast path', () => {
    for (const text of [
      '2026-11-24 12:00:00.29+00',
      '2026-11-24 12:00:00.000001+00',
      '1999-12-31 23:59:59.999999+00',
      '2026-11-24 17:30:00+05:30',
      '2026-11-24 07:00:00-05',
      '0099-01-01 00:00:00+00',
      '2000-01-01 00:00:00+00 BC',
      '12026-01-01 00:00:00+00',
      '2026-11-24 12:00:00.123+01',
    ]) {
      expect(parseTimestamptz(text).getTime(), text).toBe((pgParser(text) as Date).getTime());
    }
    expect(parseTimestamptz('infinity')).toBe(Infinity);
    expect(parseTimestamptz('-infinity')).toBe(-Infinity);
  });
});

describe('API connections', () => {
  const ctx = useTestContext('pg_types');
  beforeAll(async () => {
    await ctx.db.query(`ALTER DATABASE ${pg.escapeIdentifier(ctx.db.name)} SET TimeZone = 'Asia/Kolkata'`);
  });

  it('run in UTC whatever the database default, and read the same instants as a plain pg client', async () => {
    const values = `SELECT v FROM unnest(ARRAY['2026-11-24 12:34:56.789012+00', '2026-11-24 00:00:00+00', '1970-01-01 00:00:00.5+00',
                                             '2000-02-29 23:59:59.999999+00', 'infinity', '-infinity']::timestamptz[]) WITH ORDINALITY AS u(v, i) ORDER BY i`;
    const plain = new pg.Client({ connectionString: ctx.db.url });
    await plain.connect();
    try {
      const { rows: [zone] } = await plain.query<{ TimeZone: string }>('SHOW TimeZone');
      expect(zone!.TimeZone).toBe('Asia/Kolkata');
      const expected = (await plain.query<{ v: Date | number }>(values)).rows.map((r) => +r.v);

      const api = await ctx.db.pool.connect();
      try {
        const { rows: [apiZone] } = await api.query<{ TimeZone: string }>('SHOW TimeZone');
        expect(apiZone!.TimeZone).toBe('UTC');
        expect((await api.query<{ v: Date | number }>(values)).rows.map((r) => +r.v)).toEqual(expected);
      } finally {
        api.release();
      }
      // The same types on a client of its own (how the benchmark reads).
      const own = new pg.Client({ connectionString: ctx.db.url, types: apiTypes });
      await own.connect();
      expect((await own.query<{ v: Date | number }>(values)).rows.map((r) => +r.v)).toEqual(expected);
      await own.end();
    } finally {
      await plain.end();
    }
  });
});
