import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileRoute } from '../../src/server/static-files.ts';

/**
 * The dashboard's browser libraries, served straight out of node_modules (no copy in the repository,
 * no build step): graphql-ws's ESM client with the chunk files it imports, and lightweight-charts'
 * standalone ESM build. Keys are URL paths for startApi's `routes` option.
 */
const require = createRequire(import.meta.url);

/** The versions are pinned in package-lock, so an hour of caching is harmless. */
const CACHE = 'public, max-age=3600';

function packageDir(name: string): string {
  return path.dirname(require.resolve(`${name}/package.json`));
}

/** `file` and every relative module it imports (transitively), as names relative to its folder. */
function relativeImportClosure(file: string): string[] {
  const dir = path.dirname(file);
  const seen = new Set<string>();
  const queue = [path.basename(file)];
  while (queue.length > 0) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const source = fs.readFileSync(path.join(dir, name), 'utf8');
    for (const m of source.matchAll(/\b(?:from|import)\s*\(?\s*['"](\.\/[^'"]+)['"]/g)) {
      const rel = path.posix.normalize(m[1]!);
      if (rel.startsWith('..') || rel.includes('/')) throw new Error(`graphql-ws: unexpected import ${m[1]} in ${name}`);
      queue.push(rel);
    }
  }
  return [...seen];
}

export function vendorRoutes(): Record<string, http.RequestListener> {
  const routes: Record<string, http.RequestListener> = {};

  // graphql-ws/dist/client.js is ESM but imports a content-hashed chunk (./common-XXXX.js) next to it:
  // serve the whole closure under one folder so the relative imports resolve in the browser.
  const wsDist = path.join(packageDir('graphql-ws'), 'dist');
  for (const name of relativeImportClosure(path.join(wsDist, 'client.js'))) {
    routes[`/vendor/graphql-ws/${name}`] = fileRoute(path.join(wsDist, name), CACHE);
  }

  const chartsFile = path.join(packageDir('lightweight-charts'), 'dist', 'lightweight-charts.standalone.production.mjs');
  if (!fs.existsSync(chartsFile)) throw new Error(`lightweight-charts: ${chartsFile} is missing (npm install)`);
  routes['/vendor/lightweight-charts.js'] = fileRoute(chartsFile, CACHE);

  return routes;
}
