import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pathToFileURL } from 'node:url';

/**
 * The bundled example origin: a small JSON API whose endpoints each show
 * one caching behaviour. `npm start` puts Lacquer in front of it when no
 * origin is configured. Every response carries X-Origin-Hits, so a user can
 * see when a request really reached the origin.
 */

interface Route {
  readonly about: string;
  readonly handle: (request: IncomingMessage, url: URL, hits: number) => Answer | Promise<Answer>;
}

interface Answer {
  readonly status?: number;
  readonly headers?: Record<string, string | string[]>;
  readonly body?: unknown;
  /** An ETag: a matching If-None-Match is answered with 304. */
  readonly etag?: string;
}

const DAY_MS = 86_400_000;
const MAX_BIG_KIB = 64 * 1024;

const routes: Record<string, Route> = {
  '/fresh': {
    about: 'Cache-Control: public, max-age=60 with an ETag: a hit for a minute',
    handle: () => ({ headers: { 'cache-control': 'public, max-age=60' }, etag: '"fresh-v1"', body: { message: 'fresh for 60 seconds' } }),
  },
  '/shared': {
    about: 'max-age=10 for browsers, s-maxage=120 for Lacquer',
    handle: () => ({ headers: { 'cache-control': 'max-age=10, s-maxage=120' }, body: { message: 'shared caches keep this for 2 minutes' } }),
  },
  '/swr': {
    about: 'max-age=5, stale-while-revalidate=30, stale-if-error=300: stale served while one refresh runs',
    handle: () => ({
      headers: { 'cache-control': 'max-age=5, stale-while-revalidate=30, stale-if-error=300' },
      etag: '"swr-v1"',
      body: { message: 'stale-while-revalidate after 5 seconds', generatedAt: new Date().toISOString() },
    }),
  },
  '/slow': {
    about: 'waits ?ms= milliseconds (default 500), max-age=30: concurrent misses are coalesced',
    handle: async (_request, url) => {
      const ms = Math.min(Number(url.searchParams.get('ms') ?? 500) || 0, 10_000);
      await new Promise((resolve) => setTimeout(resolve, ms));
      return { headers: { 'cache-control': 'max-age=30' }, body: { message: `answered after ${ms} ms` } };
    },
  },
  '/private': {
    about: 'Cache-Control: private: never stored by Lacquer',
    handle: () => ({ headers: { 'cache-control': 'private, max-age=60' }, body: { message: 'for one user only' } }),
  },
  '/no-store': {
    about: 'Cache-Control: no-store: never stored',
    handle: () => ({ headers: { 'cache-control': 'no-store' }, body: { message: 'never stored' } }),
  },
  '/cookie': {
    about: 'sets a cookie: not stored by default',
    handle: (_request, _url, hits) => ({ headers: { 'cache-control': 'max-age=60', 'set-cookie': `session=${hits}; HttpOnly` }, body: { message: 'has a Set-Cookie' } }),
  },
  '/vary': {
    about: 'Vary: Accept-Language: one stored variant per language (en, fr, de)',
    handle: (request) => {
      const language = /^(fr|de)/i.exec(request.headers['accept-language'] ?? '')?.[1]?.toLowerCase() ?? 'en';
      const greeting = { en: 'Hello', fr: 'Bonjour', de: 'Hallo' }[language as 'en' | 'fr' | 'de'];
      return { headers: { 'cache-control': 'max-age=60', vary: 'Accept-Language', 'content-language': language }, body: { greeting } };
    },
  },
  '/last-modified': {
    about: 'only Last-Modified (a day ago): heuristic freshness',
    handle: () => ({ headers: { 'last-modified': new Date(Date.now() - DAY_MS).toUTCString() }, body: { message: 'heuristically fresh' } }),
  },
  '/tagged': {
    about: '/tagged/ID: max-age=300 with Surrogate-Key and Cache-Tag headers, for purging by tag',
    handle: (_request, url) => {
      const id = url.pathname.split('/')[2] ?? '0';
      return {
        headers: { 'cache-control': 'max-age=300', 'surrogate-key': `product-${id} products`, 'cache-tag': `product-${id},products` },
        body: { product: id },
      };
    },
  },
  '/big': {
    about: '?kib=N kibibytes of body (default 256), max-age=60',
    handle: (_request, url) => {
      const kib = Math.min(Math.max(Number(url.searchParams.get('kib') ?? 256) || 0, 0), MAX_BIG_KIB);
      return { headers: { 'cache-control': 'max-age=60', 'content-type': 'application/octet-stream' }, body: Buffer.alloc(kib * 1024, 97) };
    },
  },
  '/flaky': {
    about: 'every other request answers 503; max-age=2, stale-if-error=60 hides the failures',
    handle: (_request, _url, hits): Answer =>
      hits % 2 === 0
        ? { status: 503, headers: { 'cache-control': 'no-store' }, body: { error: 'flaky origin failed this time' } }
        : { headers: { 'cache-control': 'max-age=2, stale-if-error=60' }, body: { message: 'flaky origin succeeded' } },
  },
  '/items': {
    about: 'POST /items: 201 with Location /items/1; a successful POST invalidates the cached /items',
    handle: (request): Answer =>
      request.method === 'POST'
        ? { status: 201, headers: { location: '/items/1' }, body: { created: '/items/1' } }
        : { headers: { 'cache-control': 'max-age=60' }, body: { items: ['/items/1'] } },
  },
};

function index(): Answer {
  const endpoints = Object.fromEntries(Object.entries(routes).map(([path, route]) => [path, route.about]));
  return { headers: { 'cache-control': 'max-age=5' }, body: { name: 'Lacquer example origin', endpoints } };
}

function notFound(): Answer {
  return { status: 404, headers: { 'cache-control': 'max-age=5' }, body: { error: 'not found' } };
}

function routeFor(pathname: string): Route | undefined {
  return routes[`/${pathname.split('/')[1] ?? ''}`];
}

/** Weak comparison, as a server does for If-None-Match (RFC 9110 §13.1.2). */
function matches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  const strip = (tag: string) => tag.trim().replace(/^W\//, '');
  return ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => strip(tag) === strip(etag));
}

async function answer(request: IncomingMessage, response: ServerResponse, hits: Map<string, number>): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://origin.invalid');
  const count = (hits.get(url.pathname) ?? 0) + 1;
  hits.set(url.pathname, count);
  const route = url.pathname === '/' ? undefined : routeFor(url.pathname);
  const result = url.pathname === '/' ? index() : route === undefined ? notFound() : await route.handle(request, url, count);

  const headers: Record<string, string | string[]> = { 'x-origin-hits': String(count), ...result.headers };
  if (result.etag !== undefined) headers['etag'] = result.etag;
  if (result.etag !== undefined && matches(request.headers['if-none-match'], result.etag)) {
    response.writeHead(304, headers);
    response.end();
    return;
  }
  const body = Buffer.isBuffer(result.body) ? result.body : Buffer.from(`${JSON.stringify(result.body, null, 2)}\n`);
  headers['content-type'] ??= 'application/json; charset=utf-8';
  headers['content-length'] = String(body.length);
  response.writeHead(result.status ?? 200, headers);
  response.end(request.method === 'HEAD' ? undefined : body);
}

export interface ExampleOrigin {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startExampleOrigin(options: { host?: string; port?: number } = {}): Promise<ExampleOrigin> {
  const hits = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server = createServer((request, response) => {
    // Request bodies are read and discarded: the example only reports that one arrived.
    request.resume();
    request.on('end', () => {
      answer(request, response, hits).catch(() => response.destroy());
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env['PORT'] ?? 3000);
  startExampleOrigin({ port }).then(
    (origin) => console.log(`example origin listening on ${origin.url}`),
    (error: unknown) => {
      console.error(`example origin could not start: ${String(error)}`);
      process.exit(1);
    },
  );
}
