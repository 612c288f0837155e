import type { KeyOptions } from '../../config/types.js';
import { headerValue, type HeaderMap } from '../http/headers.js';

/**
 * The primary cache key: host + path + normalized query (+ any configured
 * request headers). The path and query sent upstream are derived from the
 * same normalization, so the key always names exactly what the origin is
 * asked for: a key that differs from the forwarded request is how caches
 * get poisoned.
 */
export interface RequestTarget {
  /** The cache key. GET and HEAD share it. */
  readonly key: string;
  /** Path and query to send to the origin (before any origin path prefix). */
  readonly upstreamPath: string;
  /** Lower-cased host without a default port. */
  readonly host: string;
}

export function requestTarget(url: string, headers: HeaderMap, options: KeyOptions): RequestTarget {
  const host = normalizeHost(headerValue(headers, 'host') ?? '');
  const queryStart = url.indexOf('?');
  const path = queryStart === -1 ? url : url.slice(0, queryStart);
  const query = queryStart === -1 ? '' : normalizeQuery(url.slice(queryStart + 1), options.query.sort, options.query.drop);
  const upstreamPath = query === '' ? path : `${path}?${query}`;
  let key = host + upstreamPath;
  for (const name of options.headers) key += `\n${name}:${headerValue(headers, name) ?? ''}`;
  return { key, upstreamPath, host };
}

/** The key an absolute or relative URL (e.g. a Location header) names on the same host, or undefined for another origin. */
export function keyForLocation(location: string, requestHost: string, options: KeyOptions, headers: HeaderMap): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(location, `http://${requestHost}`);
  } catch {
    return undefined;
  }
  // RFC 9111 §4.4: only URIs with the same origin as the request are invalidated.
  if (normalizeHost(parsed.host) !== requestHost) return undefined;
  return requestTarget(parsed.pathname + parsed.search, { ...headers, host: requestHost }, options).key;
}

/**
 * Whether a Host field is `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986
 * §3.2.2): a registered name or an IP literal, and digits after the colon.
 * Anything else (a slash, `?`, `#`, `@`, spaces) is refused, since the key
 * is the host followed by the path and must never be read as another path.
 */
export function isHostField(value: string | string[]): boolean {
  return typeof value === 'string' && HOST_FIELD.test(value);
}

const HOST_FIELD = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]{0,5})?$/;

export function normalizeHost(host: string): string {
  const lower = host.trim().toLowerCase();
  return lower.endsWith(':80') ? lower.slice(0, -3) : lower;
}

function normalizeQuery(query: string, sort: boolean, drop: readonly string[]): string {
  if (query === '') return '';
  let params = query.split('&').filter((param) => param !== '');
  if (drop.length > 0) params = params.filter((param) => !drop.includes(decodeName(param)));
  // A stable sort keeps repeated names (a=1&a=2) in their original order, which some APIs rely on.
  if (sort) params = params.map((param, index) => ({ param, name: decodeName(param), index })).sort(byName).map((p) => p.param);
  return params.join('&');
}

function byName(a: { name: string; index: number }, b: { name: string; index: number }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.index - b.index;
}

function decodeName(param: string): string {
  const eq = param.indexOf('=');
  const raw = eq === -1 ? param : param.slice(0, eq);
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}
