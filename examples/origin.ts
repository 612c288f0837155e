import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';

/**
 * The bundled example origin: a small JSON API with one endpoint per caching
 * behaviour. `npm start` puts Lacquer in front of it when no origin is
 * configured. Every response carries X-Origin-Hits (a per-path counter), so a
 * user can tell a cached answer from one that really reached the origin.
 */

interface Context {
  readonly request: IncomingMessage;
  readonly url: URL;
  readonly params: Readonly<Record<string, string>>;
  readonly hits: number; // requests for this path that reached the origin, this one included
  readonly bodyBytes: number; // bodies are counted, never kept: no route needs their content
  readonly lastModified: string; // fixed at a day before start-up, so revalidation with If-Modified-Since can succeed
}

interface Answer {
  readonly status?: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body: unknown; // sent as pretty JSON, or as is when already a Buffer
  readonly etag?: boolean; // derive a strong ETag from the body, so If-None-Match can be answered with 304
}

interface Route {
  readonly method: 'GET' | 'POST';
  readonly path: string; // segments starting with ':' capture a parameter
  readonly shows: string;
  readonly handle: (context: Context) => Answer | Promise<Answer>;
}

const DAY_MS = 86_400_000;
const MAX_BIG_KIB = 64 * 1024;
const GREETINGS = { en: 'Hello', fr: 'Bonjour', de: 'Hallo' } as const;
/** Counters are per path and /tagged/:id takes any id; a cap keeps a stray crawler from growing the map forever. */
const MAX_COUNTED_PATHS = 10_000;

const cacheControl = (value: string): Record<string, string> => ({ 'cache-control': value });

const routes: readonly Route[] = [
  { method: 'GET', path: '/', shows: 'this list of endpoints',
    handle: () => ({ headers: cacheControl('max-age=5'), body: { name: 'Lacquer example origin', endpoints: Object.fromEntries(routes.map((r) => [`${r.method} ${r.path}`, r.shows])) } }) },
  { method: 'GET', path: '/fresh', shows: 'public, max-age=60 and an ETag: a hit for a minute, then revalidated',
    handle: () => ({ headers: cacheControl('public, max-age=60'), etag: true, body: { message: 'fresh for 60 seconds' } }) },
  { method: 'GET', path: '/shared', shows: 'max-age=10, s-maxage=120: a shared cache like Lacquer keeps it longer than a browser',
    handle: () => ({ headers: cacheControl('max-age=10, s-maxage=120'), body: { message: 'browsers keep this 10 s, shared caches 120 s' } }) },
  { method: 'GET', path: '/swr', shows: 'max-age=5, stale-while-revalidate=30, stale-if-error=300 and an ETag: stale answers while a background revalidation gets a 304',
    // The body is constant so its ETag is too: every revalidation can end in 304.
    handle: () => ({ headers: cacheControl('max-age=5, stale-while-revalidate=30, stale-if-error=300'), etag: true, body: { message: 'served stale while being revalidated' } }) },
  { method: 'GET', path: '/slow', shows: '?ms=500: answers after a delay, max-age=30: concurrent misses coalesce into one origin request',
    handle: async ({ url }) => {
      const ms = clampInt(url.searchParams.get('ms') ?? '500', 0, 10_000);
      await sleep(ms);
      return { headers: cacheControl('max-age=30'), body: { message: `answered after ${ms} ms` } };
    } },
  { method: 'GET', path: '/private', shows: 'private, max-age=60: for one user, never stored by a shared cache',
    handle: () => ({ headers: cacheControl('private, max-age=60'), body: { message: 'for one user only' } }) },
  { method: 'GET', path: '/no-store', shows: 'no-store: never stored',
    handle: () => ({ headers: cacheControl('no-store'), body: { message: 'never stored' } }) },
  { method: 'GET', path: '/cookie', shows: 'Set-Cookie with max-age=60: not stored by default (cache.setCookie)',
    handle: ({ hits }) => ({ headers: { ...cacheControl('max-age=60'), 'set-cookie': `session=${hits}; Path=/; HttpOnly` }, body: { message: 'sets a cookie' } }) },
  { method: 'GET', path: '/vary', shows: 'Vary: Accept-Language: one stored variant per language (en, fr, de)',
    handle: ({ request }) => {
      const language = pickLanguage(request.headers['accept-language']);
      return { headers: { ...cacheControl('max-age=60'), vary: 'Accept-Language', 'content-language': language }, etag: true, body: { greeting: GREETINGS[language] } };
    } },
  { method: 'GET', path: '/last-modified', shows: 'only Last-Modified (a day ago): heuristic freshness, revalidated with If-Modified-Since',
    handle: ({ lastModified }) => ({ headers: { 'last-modified': lastModified }, body: { message: 'heuristically fresh' } }) },
  { method: 'GET', path: '/tagged/:id', shows: 'max-age=300 with Surrogate-Key and Cache-Tag: purge it by tag product-<id> or products',
    handle: ({ params }) => {
      const id = params['id'] ?? '';
      return { headers: { ...cacheControl('max-age=300'), 'surrogate-key': `product-${id} products`, 'cache-tag': `product-${id},products` }, body: { product: id } };
    } },
  { method: 'GET', path: '/big', shows: `?kib=N: N KiB of body (at most ${MAX_BIG_KIB}), max-age=60: size limits and streaming`,
    handle: ({ url }) => {
      const kib = clampInt(url.searchParams.get('kib') ?? '1024', 0, MAX_BIG_KIB);
      return { headers: { ...cacheControl('max-age=60'), 'content-type': 'text/plain; charset=utf-8' }, body: Buffer.alloc(kib * 1024, 'x') };
    } },
  { method: 'GET', path: '/flaky', shows: 'every other request answers 503; max-age=2, stale-if-error=60 hides the failures',
    // Odd hits succeed, so the very first request gives the cache something to fall back on.
    handle: ({ hits }) => hits % 2 === 1
      ? { headers: cacheControl('max-age=2, stale-if-error=60'), body: { message: 'the flaky origin answered' } }
      : { status: 503, headers: { ...cacheControl('no-store'), 'retry-after': '1' }, body: { error: 'the flaky origin failed this time' } } },
  { method: 'GET', path: '/items', shows: 'max-age=60: cached until a POST /items invalidates it',
    handle: () => ({ headers: cacheControl('max-age=60'), body: { items: ['/items/1'] } }) },
  { method: 'GET', path: '/items/:id', shows: 'max-age=60: cached until a POST /items (Location: /items/1) invalidates /items/1',
    handle: ({ params }) => ({ headers: cacheControl('max-age=60'), body: { item: params['id'] } }) },
  { method: 'POST', path: '/items', shows: '201 with Location: /items/1: an unsafe method invalidates /items and /items/1',
    handle: ({ bodyBytes }) => ({ status: 201, headers: { location: '/items/1' }, body: { created: '/items/1', receivedBytes: bodyBytes } }) },
];

/** A whole number in [min, max]; anything unparsable becomes min. */
function clampInt(text: string, min: number, max: number): number {
  const value = Math.trunc(Number(text));
  return Number.isFinite(value) ? Math.min(Math.max(value, min), max) : min;
}

/** The best supported language by q-value (RFC 9110 §12.5.4), English when none is acceptable. */
function pickLanguage(header: string | undefined): keyof typeof GREETINGS {
  const ranked = (header ?? '').split(',').map((part) => {
    const [range = '', ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((param) => /^\s*q=([\d.]+)\s*$/.exec(param)?.[1]).find((value) => value !== undefined);
    return { primary: range.trim().split('-')[0] ?? '', q: q === undefined ? 1 : Number(q) };
  });
  // sort() is stable, so equal q-values keep the client's order.
  const found = ranked.filter((entry) => entry.q > 0).sort((a, b) => b.q - a.q).find((entry) => Object.hasOwn(GREETINGS, entry.primary));
  return (found?.primary ?? 'en') as keyof typeof GREETINGS;
}

function matchPath(pattern: string, pathname: string): Record<string, string> | undefined {
  const want = pattern.split('/');
  const got = pathname.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (const [index, segment] of want.entries()) {
    const actual = got[index] ?? '';
    // Parameters stay percent-encoded: that keeps them safe to echo in header values.
    if (segment.startsWith(':') && actual !== '') params[segment.slice(1)] = actual;
    else if (segment !== actual) return undefined;
  }
  return params;
}

/** If-None-Match uses weak comparison (RFC 9110 §13.1.2) and, when present, overrides If-Modified-Since. */
function notModified(request: IncomingMessage, etag: string | undefined, lastModified: string | undefined): boolean {
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    return etag !== undefined && (ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => opaque(tag) === opaque(etag)));
  }
  const since = Date.parse(request.headers['if-modified-since'] ?? '');
  return lastModified !== undefined && !Number.isNaN(since) && Date.parse(lastModified) <= since;
}

async function serve(request: IncomingMessage, response: ServerResponse, hits: Map<string, number>, lastModified: string): Promise<void> {
  let bodyBytes = 0;
  for await (const chunk of request) bodyBytes += (chunk as Buffer).length;

  const url = new URL(request.url ?? '/', 'http://origin.invalid');
  if (hits.size >= MAX_COUNTED_PATHS && !hits.has(url.pathname)) hits.clear();
  const count = (hits.get(url.pathname) ?? 0) + 1;
  hits.set(url.pathname, count);

  // HEAD is answered like GET; Node leaves the body out by itself.
  const method = request.method === 'HEAD' ? 'GET' : request.method;
  const candidates = routes.flatMap((route) => {
    const params = matchPath(route.path, url.pathname);
    return params === undefined ? [] : [{ route, params }];
  });
  const chosen = candidates.find((candidate) => candidate.route.method === method);
  const answer: Answer =
    chosen !== undefined
      ? await chosen.route.handle({ request, url, params: chosen.params, hits: count, bodyBytes, lastModified })
      : candidates.length > 0
        ? { status: 405, headers: { allow: [...new Set(candidates.map((c) => c.route.method))].join(', ') }, body: { error: 'method not allowed' } }
        : { status: 404, headers: cacheControl('max-age=5'), body: { error: 'not found', see: '/' } };

  const headers: OutgoingHttpHeaders = { 'x-origin-hits': String(count), ...answer.headers };
  const body = Buffer.isBuffer(answer.body) ? answer.body : Buffer.from(`${JSON.stringify(answer.body, null, 2)}\n`);
  const status = answer.status ?? 200;
  if (answer.etag === true) headers['etag'] = `"${createHash('sha1').update(body).digest('base64url').slice(0, 16)}"`;
  const conditional = method === 'GET' && status === 200;
  if (conditional && notModified(request, headers['etag'] as string | undefined, answer.headers?.['last-modified'])) {
    response.writeHead(304, headers).end();
    return;
  }
  headers['content-type'] ??= 'application/json; charset=utf-8';
  headers['content-length'] = body.length;
  response.writeHead(status, headers).end(body);
}

export interface ExampleOrigin {
  readonly url: string;
  readonly port: number;
  /** Stops listening and drops open connections (including keep-alive sockets a proxy holds). */
  close(): Promise<void>;
}

export async function startExampleOrigin(opts: { host?: string; port?: number } = {}): Promise<ExampleOrigin> {
  const host = opts.host ?? '127.0.0.1';
  const hits = new Map<string, number>();
  // Whole seconds: HTTP dates carry no more, and If-Modified-Since must compare equal to it.
  const lastModified = new Date(Math.floor((Date.now() - DAY_MS) / 1000) * 1000).toUTCString();
  const server = createServer((request, response) => {
    // Only an aborted request or a bug lands here; a cut connection is what a proxy sees from a failing origin anyway.
    serve(request, response, hits, lastModified).catch(() => response.destroy());
  });
  server.listen(opts.port ?? 0, host);
  await once(server, 'listening'); // rejects on 'error', e.g. EADDRINUSE
  const { port } = server.address() as AddressInfo;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    // Memoised: callers on several shutdown paths may each call close().
    close: () =>
      (closing ??= new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
        server.closeAllConnections();
      })),
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.env['PORT'] ?? 3000);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    console.error(`PORT must be a port number, not ${JSON.stringify(process.env['PORT'])}`);
    process.exit(2);
  }
  // HOST=0.0.0.0 in a container, where loopback is unreachable from the proxy (deploy/docker-compose.yml).
  const origin = await startExampleOrigin({ port, host: process.env['HOST'] || '127.0.0.1' });
  console.log(`Lacquer example origin listening on ${origin.url} (GET / lists the endpoints)`);
}
