// Postgres LSNs ('16/B374D848') as 64-bit integers, and microsecond timestamps as text. Our change-feed
// tables store `_lsn` as a Delta `long` and use the same integer as the `txn.version` of each commit, so
// that "everything at or below this version is in the lake" is a plain integer comparison.

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** '16/B374D848' -> 0x16B374D848n. */
export function parseLsn(text: string): bigint {
  const match = LSN_TEXT.exec(text);
  if (!match) throw new Error(`not a Postgres LSN: ${JSON.stringify(text)}`);
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

/** 0x16B374D848n -> '16/B374D848' (Postgres's own spelling). */
export function formatLsn(lsn: bigint): string {
  if (lsn < 0n || lsn > 0xffff_ffff_ffff_ffffn) throw new RangeError(`LSN out of range: ${lsn}`);
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

/**
 * Microseconds since the Unix epoch -> '2024-01-02 03:04:05.123456+00', a text form both Postgres
 * and DuckDB read back exactly. The calendar part goes through Date (whole seconds only); the
 * fraction is printed from the integer, so no precision is lost.
 */
export function formatMicrosUtc(micros: bigint): string {
  const seconds = micros >= 0n ? micros / 1_000_000n : -((-micros + 999_999n) / 1_000_000n);
  const fraction = micros - seconds * 1_000_000n;
  const iso = new Date(Number(seconds) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  if (!/^\d{4}-/.test(iso)) throw new RangeError(`timestamp out of range: ${micros} µs`);
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${fraction.toString().padStart(6, '0')}+00`;
}
