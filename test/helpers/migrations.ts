import { readFunctionFiles, readMigrations } from '../../src/db/migrate.ts';

/**
 * What `migrate` applies to a database whose ledger holds every migration before `firstNew` and no
 * function file: the function files those migrations need (numbered before `firstNew`), then each
 * new migration followed by the function files numbered from it up to the next one.
 */
export function expectedApplyOrder(firstNew: string): string[] {
  const numbered = (file: string) => file.replace(/^functions\//, '').slice(0, 3);
  const functionFiles = readFunctionFiles().map((f) => f.file);
  const later = readMigrations().filter((m) => m.version >= firstNew);
  return [
    ...functionFiles.filter((f) => numbered(f) < firstNew),
    ...later.flatMap((m, i) => [m.file, ...functionFiles.filter((f) => numbered(f) >= m.version && numbered(f) < (later[i + 1]?.version ?? '999'))]),
  ];
}
