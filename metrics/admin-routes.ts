import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Registry } from 'prom-client';
import type { KeyOptions } from '../config/types.js';
import type { Entry } from '../proxy/cache/entry.js';
import { requestTarget } from '../proxy/cache/key.js';
import { setField, type HeaderMap } from '../proxy/http/headers.js';
import type { Store } from '../proxy/store/store.js';
import { explain } from './explain.js';

/**
 * The observability routes on the admin listener: GET /metrics (Prometheus
 * text format) and GET /explain?url=… (what Lacquer would do for a URL).
 */

/** Decides whether an admin request may see /explain (it reveals what is stored, so it is guarded like purge). */
export type Authorize = (request: FastifyRequest) => boolean;

export interface ObservabilityRoutesOptions {
  /** Absent when metrics are disabled: /metrics is then not served. */
  readonly registry?: Registry;
  /** Replaces this registry's text (a worker answers for all workers). */
  readonly scrape?: (() => Promise<string>) | undefined;
  readonly explain: {
    readonly store: Store;
    readonly tier: string;
    readonly key: KeyOptions;
    readonly honorRequestCacheControl: boolean;
    readonly clock: () => number;
    /** Default: loopback clients only. */
    readonly authorize?: Authorize;
  };
}

export function registerObservabilityRoutes(app: FastifyInstance, options: ObservabilityRoutesOptions): void {
  const registry = options.registry;
  if (registry !== undefined) {
    app.get('/metrics', async (_request, reply) => {
      const text = options.scrape === undefined ? await registry.metrics() : await options.scrape();
      return reply.header('content-type', registry.contentType).header('cache-control', 'no-store').send(text);
    });
  }

  const { store, tier, key, honorRequestCacheControl, clock } = options.explain;
  const authorize = options.explain.authorize ?? loopbackOnly;
  app.get('/explain', async (request, reply) => {
    if (!authorize(request)) return reply.code(403).header('cache-control', 'no-store').send({ error: 'not allowed to explain: use the purge token (or, without one, a loopback client)' });
    const parsed = parseExplainQuery(request.query as Record<string, string | string[] | undefined>);
    if (typeof parsed === 'string') return reply.code(400).header('cache-control', 'no-store').send({ error: parsed });

    const target = requestTarget(parsed.path, parsed.headers, key);
    let variants: readonly Entry[] | undefined;
    try {
      variants = await store.get(target.key);
    } catch (error) {
      return reply.code(503).header('cache-control', 'no-store').send({ error: `the store could not be read: ${error instanceof Error ? error.message : String(error)}` });
    }
    const report = explain({ target, headers: parsed.headers, variants, now: clock(), tier, honorRequestCacheControl });
    return reply.header('cache-control', 'no-store').send(report);
  });
}

export interface ExplainQuery {
  /** Path and query exactly as a client would send them. */
  readonly path: string;
  readonly headers: HeaderMap;
}

/**
 * `url` is absolute (http://host/path?query) or a path with a `host`
 * parameter; each `header` parameter is one request header, "Name: value".
 */
export function parseExplainQuery(query: Record<string, string | string[] | undefined>): ExplainQuery | string {
  const url = single(query['url']);
  if (url === undefined || url === '') return 'expected ?url=http://host/path (or ?url=/path&host=host)';
  const headers: Record<string, string> = {};
  for (const line of list(query['header'])) {
    const colon = line.indexOf(':');
    const name = colon <= 0 ? '' : line.slice(0, colon).trim().toLowerCase();
    if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(name)) return `expected header=Name: value, got "${line}"`;
    setField(headers, name, line.slice(colon + 1).trim());
  }
  let path: string;
  if (url.startsWith('/')) {
    const host = single(query['host']) ?? headers['host'];
    if (host === undefined || host === '') return 'a path needs a host: pass ?host=… or an absolute url';
    headers['host'] = host;
    path = url;
  } else {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return `not a URL: "${url}"`;
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `expected an http or https URL, got ${parsed.protocol}`;
    headers['host'] = parsed.host;
    // The path as written, not as the URL parser re-encodes it: the key is built from what clients send.
    const afterAuthority = url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '').replace(/#.*$/, '');
    path = afterAuthority === '' ? '/' : afterAuthority.startsWith('?') ? `/${afterAuthority}` : afterAuthority;
  }
  return { path, headers };
}

/** Admin requests from this machine only: the safe default until a token is configured. */
export function loopbackOnly(request: FastifyRequest): boolean {
  const address = request.socket.remoteAddress ?? '';
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.');
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function list(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}
