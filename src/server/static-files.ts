import fs from 'node:fs';
import type http from 'node:http';
import path from 'node:path';

const STATIC_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

export type StaticOutcome = 'served' | 'not-found' | 'bad-request';

/** The content type a file is served with, by its extension; undefined: not served. */
export function contentTypeOf(file: string): string | undefined {
  return STATIC_TYPES[path.extname(file)];
}

/** The file under `root` a URL path names, or why there is none. Never a path outside `root`. */
export function resolveStaticPath(root: string, urlPath: string): { file: string; type: string } | 'not-found' | 'bad-request' {
  let rel: string;
  try {
    rel = urlPath === '/' ? 'index.html' : decodeURIComponent(urlPath).replace(/^\/+/, '');
  } catch {
    return 'bad-request'; // malformed percent-encoding such as "/%"
  }
  if (rel.includes('\0')) return 'bad-request';
  const base = path.resolve(root);
  const file = path.resolve(base, rel);
  if (!file.startsWith(base + path.sep)) return 'not-found';
  const type = contentTypeOf(file);
  if (!type) return 'not-found';
  return { file, type };
}

/**
 * Sends one file (GET or HEAD). Asynchronous throughout: a missing file, a folder, a read error or a
 * client that leaves mid-way ends this one response, nothing else.
 */
export async function sendFile(
  file: string,
  type: string,
  cacheControl: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<'served' | 'not-found'> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(file);
  } catch {
    return 'not-found';
  }
  if (!stat.isFile()) return 'not-found';
  res.writeHead(200, { 'content-type': type, 'content-length': stat.size, 'cache-control': cacheControl });
  if (req.method === 'HEAD') {
    res.end();
    return 'served';
  }
  const stream = fs.createReadStream(file);
  stream.on('error', () => res.destroy());
  res.on('close', () => stream.destroy());
  stream.pipe(res);
  return 'served';
}

/** Serves a file of the dashboard's folder (always revalidated: it changes with the code). */
export async function serveStatic(root: string, urlPath: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<StaticOutcome> {
  const target = resolveStaticPath(root, urlPath);
  if (typeof target === 'string') return target;
  return sendFile(target.file, target.type, 'no-cache', req, res);
}

/** A route that serves one fixed file (GET and HEAD; 405 otherwise, 404 when it is gone). */
export function fileRoute(file: string, cacheControl: string): http.RequestListener {
  const type = contentTypeOf(file) ?? 'application/octet-stream';
  return (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' });
      res.end();
      return;
    }
    void sendFile(file, type, cacheControl, req, res).then((outcome) => {
      if (outcome === 'served') return;
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    });
  };
}
