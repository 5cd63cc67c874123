import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/processes.ts';

// The layers of docs/ARCHITECTURE.md §1, lowest first. A module may import modules of its own
// folder and of lower layers, never of a higher one nor of another folder of its own layer.
// `src/config.ts` and its folder `src/config/` are one unit.
const LAYERS: string[][] = [
  ['src/config', 'src/logger.ts', 'src/time'],
  ['src/db', 'src/lake'],
  ['src/scheduler'],
  ['src/cdf', 'src/lifecycle', 'src/ticks'],
  ['src/services'],
  ['src/resolvers'],
  ['src/server'],
  ['src/main.ts'],
  ['jobs', 'demo/live'],
];

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'public' ? [] : sourceFiles(rel);
    return e.name.endsWith('.ts') ? [rel] : [];
  });
}

/** The layer folder (or top-level module) a file belongs to. */
function unitOf(file: string): string {
  const unit = LAYERS.flat().find((u) => file === u || file === `${u}.ts` || file.startsWith(`${u}/`));
  if (!unit) throw new Error(`${file} belongs to no layer: add its folder to LAYERS and docs/ARCHITECTURE.md`);
  return unit;
}

const rankOf = (unit: string) => LAYERS.findIndex((layer) => layer.includes(unit));

/** The repository files a file imports (relative imports, type-only ones included). */
function importsOf(file: string): string[] {
  const source = fs.readFileSync(path.join(REPO_ROOT, file), 'utf8');
  const specifiers = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|(?:^|\n)\s*import\s*['"](\.[^'"]+)['"]|import\s*\(\s*['"](\.[^'"]+)['"]\s*\)/g;
  return [...source.matchAll(specifiers)].map((m) => path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1] ?? m[2] ?? m[3]!)));
}

const files = ['src', 'jobs', 'demo/live'].flatMap(sourceFiles);
const graph = new Map(files.map((f) => [f, importsOf(f)]));

describe('the layout', () => {
  it('puts every module in a layer, and its imports point down the layers only', () => {
    const wrong: string[] = [];
    for (const [file, imports] of graph) {
      const unit = unitOf(file);
      for (const target of imports) {
        const targetUnit = unitOf(target);
        if (targetUnit === unit) continue;
        if (rankOf(targetUnit) >= rankOf(unit)) wrong.push(`${file} -> ${target}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('has no import cycle between modules', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') {
        cycles.push([...trail.slice(trail.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'visiting');
      for (const target of graph.get(file) ?? []) visit(target, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('names the tick table in configuration and SQL only', () => {
    const named = files.filter((f) => f !== 'src/config.ts' && /\bstock_ticks\b/.test(fs.readFileSync(path.join(REPO_ROOT, f), 'utf8')));
    expect(named).toEqual([]);
  });

  it('reads the environment in configuration only', () => {
    const readers = files.filter((f) => f !== 'src/config.ts' && /process\.env\b(?!\s*,|\s*})/.test(fs.readFileSync(path.join(REPO_ROOT, f), 'utf8')));
    expect(readers).toEqual([]);
  });
});
