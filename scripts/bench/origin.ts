import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

/**
 * The benchmark's own origin: fixed bodies with Cache-Control, an
 * uncacheable path, a slow path for coalescing, a stale-while-revalidate
 * path and numbered keys. It counts every request by path so the bench can
 * check how many reached it. Run as its own process (`node origin.js`), so
 * its work never shares an event loop with the load generator.
 */

export const KIB = 1024;

/** Paths the bench asks for; each target caches them under its own key space. */
export const PATHS = {
  hit1k: '/body/1k',
  hit100k: '/body/100k',
  hit1m: '/body/1m',
  pass: '/pass',
  swr: '/swr',
  zipf: (rank: number) => `/zipf/${rank}`,
  mem: (index: number) => `/mem/${index}`,
  slow: (id: string) => `/slow/${id}`,
} as const;

export const SLOW_DELAY_MS = 200;
/** The stale-while-revalidate path answers after this delay, so a refresh that blocks a client shows in p99. */
export const SWR_DELAY_MS = 50;
export const MEM_OBJECT_BYTES = 10 * KIB;

const CACHEABLE = 'public, max-age=3600';

function filled(size: number, seed: number): Buffer {
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i++) body[i] = 97 + ((i * 7 + seed) % 26);
  return body;
}

export interface BenchOrigin {
  readonly url: string;
  /** Requests that reached the origin for exactly this path. */
  count(path: string): number;
  close(): Promise<void>;
}

export async function startBenchOrigin(port = 0): Promise<BenchOrigin> {
  const bodies = { '1k': filled(KIB, 1), '100k': filled(100 * KIB, 2), '1m': filled(KIB * KIB, 3), mem: filled(MEM_OBJECT_BYTES, 4) };
  const counts = new Map<string, number>();
  let total = 0;

  const send = (res: ServerResponse, cacheControl: string, body: Buffer) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length, 'cache-control': cacheControl });
    res.end(body);
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    if (url.startsWith('/__count?path=')) {
      const path = decodeURIComponent(url.slice('/__count?path='.length));
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ path, count: counts.get(path) ?? 0 }));
      return;
    }
    if (url === '/__total') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify({ total }));
      return;
    }
    total++;
    counts.set(url, (counts.get(url) ?? 0) + 1);
    if (url === '/__ping') {
      res.writeHead(204, { 'cache-control': 'no-store' });
      res.end();
    } else if (url === '/body/1k' || url === '/body/100k' || url === '/body/1m') {
      send(res, CACHEABLE, bodies[url.slice(6) as '1k' | '100k' | '1m']);
    } else if (url.startsWith('/zipf/')) {
      send(res, CACHEABLE, bodies['1k']);
    } else if (url.startsWith('/mem/')) {
      send(res, CACHEABLE, bodies.mem);
    } else if (url === '/pass') {
      send(res, 'no-store', bodies['1k']);
    } else if (url.startsWith('/slow/')) {
      setTimeout(() => send(res, CACHEABLE, bodies['1k']), SLOW_DELAY_MS);
    } else if (url === '/swr') {
      setTimeout(() => send(res, 'max-age=1, stale-while-revalidate=30', bodies['1k']), SWR_DELAY_MS);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      res.end('not found\n');
    }
  };

  const server: Server = createServer(handle);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    count: (path) => counts.get(path) ?? 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Run directly: listen on a free loopback port and print it for the parent. */
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const origin = await startBenchOrigin(0);
  process.stdout.write(`BENCH_ORIGIN ${origin.url}\n`);
  const stop = () => void origin.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
