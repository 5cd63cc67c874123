import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/processes.ts';

// npm puts node_modules/.bin first on PATH for scripts, so `npm test` runs under the `node` package
// pinned in package.json, not under the machine's own Node.
describe('runtime', () => {
  it('npm scripts run under the pinned Node LTS, whatever Node the machine has', () => {
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
      engines: { node: string };
    };
    expect(process.versions.node).toBe(pkg.dependencies['node']);
    const major = Number(process.versions.node.split('.')[0]);
    expect(major).toBeGreaterThanOrEqual(Number(/\d+/.exec(pkg.engines.node)![0]));
    expect(major % 2).toBe(0); // even majors are the LTS lines
  });
});
