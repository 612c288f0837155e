import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * The soak's origin: every body is a pure function of its path and the
 * path's current version, so a client can tell a right body from a wrong,
 * stale-beyond-purge or truncated one. A path's version changes only
 * through `publish`, which the soak follows with a purge of that path.
 *
 *   /hot/N    fresh for 5 s, with an ETag (hits, 304 revalidations, purges)
 *   /swr/N    fresh for 1 s, then stale-while-revalidate for 30 s
 *   /miss/N   fresh for 5 min; the soak never asks twice (misses, evictions)
 *   /flaky/N  fails 1 time in 4 (500, a reset, a 300 ms stall), else fresh
 *             for 1 s with stale-if-error for 60 s
 *   /big/N    `bigSize` bytes, fresh for 10 min (the memory-bound phase)
 */
export interface SoakOrigin {
  readonly url: string;
  /** The body the origin sends now for `path`. */
  bodyOf(path: string): Buffer;
  version(path: string): number;
  /** Moves `path` to its next version. */
  publish(path: string): number;
  requests(): number;
  close(): Promise<void>;
}

export function sizeOf(path: string, bigSize: number): number {
  if (path.startsWith('/big/')) return bigSize;
  const seed = hash(path);
  if (path.startsWith('/miss/')) return 1024 + (seed % (64 * 1024));
  return 256 + (seed % (16 * 1024));
}

/** `path vN` then bytes that depend on path, version and offset. */
export function expectedBody(path: string, version: number, bigSize: number): Buffer {
  const head = Buffer.from(`${path} v${version}\n`);
  const size = Math.max(sizeOf(path, bigSize), head.length);
  const body = Buffer.allocUnsafe(size);
  head.copy(body);
  const seed = (hash(path) ^ (version * 2654435761)) >>> 0;
  for (let i = head.length; i < size; i++) body[i] = (seed + i * 13 + (i >> 9)) & 0xff;
  return body;
}

/** The version a body claims, or undefined if it does not start as a body of `path` does. */
export function versionIn(path: string, body: Buffer): number | undefined {
  const end = body.indexOf(10);
  if (end < 0) return undefined;
  const match = /^(.*) v(\d+)$/.exec(body.subarray(0, end).toString('latin1'));
  return match !== null && match[1] === path ? Number(match[2]) : undefined;
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

export async function startSoakOrigin(options: { bigSize: number; random?: () => number }): Promise<SoakOrigin> {
  const random = options.random ?? Math.random;
  const versions = new Map<string, number>();
  const sockets = new Set<Socket>();
  let count = 0;
  const version = (path: string) => versions.get(path) ?? 1;

  const server: Server = createServer((request, response) => {
    count++;
    const path = request.url ?? '/';
    request.resume();
    if (path.startsWith('/flaky/')) {
      const roll = random();
      if (roll < 0.1) {
        response.writeHead(500, { 'cache-control': 'no-store' });
        return void response.end('origin failure');
      }
      if (roll < 0.17) return void request.socket.destroy();
      if (roll < 0.25) return void setTimeout(() => answer(), 300);
    }
    answer();

    function answer(): void {
      if (response.destroyed) return;
      const current = version(path);
      const etag = `"v${current}"`;
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream', etag, 'cache-control': cacheControl(path) };
      if (request.headers['if-none-match'] === etag) {
        response.writeHead(304, headers);
        return void response.end();
      }
      response.writeHead(200, headers);
      response.end(expectedBody(path, current, options.bigSize));
    }
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    bodyOf: (path) => expectedBody(path, version(path), options.bigSize),
    version,
    publish: (path) => {
      const next = version(path) + 1;
      versions.set(path, next);
      return next;
    },
    requests: () => count,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function cacheControl(path: string): string {
  if (path.startsWith('/hot/')) return 'max-age=5';
  if (path.startsWith('/swr/')) return 'max-age=1, stale-while-revalidate=30';
  if (path.startsWith('/flaky/')) return 'max-age=1, stale-if-error=60';
  if (path.startsWith('/big/')) return 'max-age=600';
  return 'max-age=300';
}
