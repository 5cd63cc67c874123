import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';

/**
 * The dashboard's browser libraries, served straight out of node_modules (no copy in the repository,
 * no build step): graphql-ws's ESM client with the chunk files it imports, and lightweight-charts'
 * standalone ESM build. Keys are URL paths for startApi's `routes` option.
 */
const require = createRequire(import.meta.url);

const JS = 'text/javascript; charset=utf-8';

function packageDir(name: string): string {
  return path.dirname(require.resolve(`${name}/package.json`));
}

function fileRoute(file: string): http.RequestListener {
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' });
      res.end();
      return;
    }
    fs.stat(file, (err, stat) => {
      if (err) {
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found');
        return;
      }
      // The version is pinned in package-lock, so an hour of caching is harmless.
      res.writeHead(200, { 'content-type': JS, 'content-length': stat.size, 'cache-control': 'public, max-age=3600' });
      if (req.method === 'HEAD') {
        res.end();
        return;
      }
      // A read error or a client leaving mid-way ends this response only.
      const stream = fs.createReadStream(file);
      stream.on('error', () => res.destroy());
      res.on('close', () => stream.destroy());
      stream.pipe(res);
    });
  };
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
    routes[`/vendor/graphql-ws/${name}`] = fileRoute(path.join(wsDist, name));
  }

  const chartsFile = path.join(packageDir('lightweight-charts'), 'dist', 'lightweight-charts.standalone.production.mjs');
  if (!fs.existsSync(chartsFile)) throw new Error(`lightweight-charts: ${chartsFile} is missing (npm install)`);
  routes['/vendor/lightweight-charts.js'] = fileRoute(chartsFile);

  return routes;
}
