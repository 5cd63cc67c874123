// Quoting for the SQL text we hand to DuckDB. Every name and every value that comes from a Delta log
// (column names, file paths, partition values) goes through these, never straight into a string.

/** A DuckDB identifier: always double-quoted, so case and reserved words (`time`, `part`) are safe. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A DuckDB string literal. DuckDB's standard strings take backslashes literally; only `'` needs doubling. */
export function quoteLiteral(value: string): string {
  if (value.includes('\u0000')) throw new Error('a NUL character cannot appear in a DuckDB string literal');
  return `'${value.replaceAll("'", "''")}'`;
}
