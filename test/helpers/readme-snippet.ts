// The README's DuckDB snippet, run as a user would paste it: an independent reader of the lake (the
// log's JSON and the Parquet files, nothing of our reader), for the tests that check a lake with it.

import fs from 'node:fs';
import path from 'node:path';
import { withDuckDBConnection } from '../../src/lake/duckdb.ts';
import { REPO_ROOT } from './processes.ts';

export function readmeSnippet(): string {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const match = /<!-- duckdb-snippet -->\s*```sql\n([\s\S]*?)```/.exec(readme);
  if (!match) throw new Error('README.md has no <!-- duckdb-snippet --> sql block');
  return match[1]!;
}

/** The snippet's answer (ticks and volume per symbol) for the local table folder `lake`. */
export async function runReadmeSnippet(lake: string): Promise<Array<{ symbol: string; ticks: number; volume: number }>> {
  const sql = readmeSnippet().replaceAll('.lakets/lake/stock_ticks', lake);
  const statements = sql
    .split(/;\s*\n/)
    .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
    .filter(Boolean);
  const rows = await withDuckDBConnection(async (c) => {
    let last: Record<string, unknown>[] = [];
    for (const s of statements) last = (await c.runAndReadAll(s)).getRowObjectsJS() as Record<string, unknown>[];
    return last;
  });
  return rows.map((r) => ({ symbol: String(r['symbol']), ticks: Number(r['ticks']), volume: Number(r['volume']) }));
}
