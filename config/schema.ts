import type { Config } from './types.js';
// placeholder until the schema lands
export function defaults(): Config {
  return {
    listen: { host: '127.0.0.1', port: 8080 },
    admin: { host: '127.0.0.1', port: 8081 },
    origin: { url: null, preserveHost: false, connections: 128, connectTimeout: 5000, headersTimeout: 30000, bodyTimeout: 30000 },
    cache: { name: 'lacquer', memory: { maxSize: 256 * 1024 * 1024, maxObjectSize: 8 * 1024 * 1024 }, maxVariants: 16, defaultTtl: 0, negativeTtl: 0, heuristicFraction: 0.1, heuristicMaxTtl: 86400000, jitter: 0.1, staleWhileRevalidate: 0, staleIfError: 0, hitForMissTtl: 30000, setCookie: 'pass', honorRequestCacheControl: true },
    key: { query: { sort: true, drop: [] }, headers: [] },
    request: { stripHeaders: ['x-forwarded-host','x-forwarded-server','x-forwarded-scheme','x-forwarded-port','x-forwarded-prefix','x-host','x-original-url','x-original-host','x-rewrite-url','x-http-method-override','x-http-method','x-method-override'] },
    tags: { headers: ['surrogate-key', 'cache-tag'], strip: true },
    log: { level: 'info' },
  };
}
