import type { KeyOptions } from '../config/types.js';
import { normalizeHost, requestTarget } from '../proxy/cache/key.js';

/**
 * What a purge names, turned into tests on cache keys. Keys are host + path
 * + normalized query, followed by any configured key headers after a
 * newline (proxy/cache/key.ts); a URL names every key whose host and path
 * match, whatever those headers and whatever the variant.
 *
 * Hosts: an absolute URL names its own host. A bare path names that path on
 * every host the cache holds (as a Varnish ban on req.url alone would),
 * unless the caller fixes a host: the PURGE method uses the request's Host,
 * exactly like a Varnish `return (purge)`.
 */

export type PurgeMode = 'hard' | 'soft';
export type PurgeKind = 'url' | 'tag' | 'prefix' | 'all';

/** A purge as asked for, before it is resolved against the store. */
export interface PurgeSpec {
  readonly urls: readonly string[];
  readonly tags: readonly string[];
  readonly prefixes: readonly string[];
  readonly all: boolean;
  readonly mode: PurgeMode;
}

/** A path (and query) on one host, or on every host when `host` is undefined. */
export interface PathTarget {
  readonly host: string | undefined;
  readonly path: string;
}

const ABSOLUTE = /^(https?):\/\/([^/?#]*)([^#]*)/i;
export const URL_EXAMPLE = 'expected an absolute http(s) URL or a path starting with "/"';

/**
 * Parses a purge URL or prefix. The path is kept as written (no dot-segment
 * or percent-encoding rewrite), because keys are made from the request
 * target as received; the query is normalized the way keys are.
 */
export function parseTarget(input: string, keyOptions: KeyOptions, host?: string): PathTarget | string {
  let targetHost = host === undefined ? undefined : normalizeHost(host);
  let path: string;
  if (input.startsWith('/')) {
    path = input;
  } else {
    const match = ABSOLUTE.exec(input);
    if (match === null) return URL_EXAMPLE;
    const authority = match[2]!;
    if (authority === '' || authority.includes('@')) return 'expected a URL with a host and no user:password@';
    targetHost = normalizeHost(match[1]!.toLowerCase() === 'https' && authority.endsWith(':443') ? authority.slice(0, -4) : authority);
    path = match[3] === '' ? '/' : match[3]!.startsWith('?') ? `/${match[3]}` : match[3]!;
  }
  const hash = path.indexOf('#');
  if (hash !== -1) path = path.slice(0, hash);
  const normalized = requestTarget(path, { host: targetHost ?? '' }, { ...keyOptions, headers: [] }).upstreamPath;
  return { host: targetHost, path: normalized };
}

/** The host and path a key was made from (without key headers). */
export function splitKey(key: string): PathTarget & { host: string } {
  const end = key.indexOf('\n');
  const base = end === -1 ? key : key.slice(0, end);
  const slash = base.indexOf('/');
  return slash === -1 ? { host: base, path: '' } : { host: base.slice(0, slash), path: base.slice(slash) };
}

/** Whether a key is one of `urls` or under one of `prefixes`. */
export function keyMatcher(urls: readonly PathTarget[], prefixes: readonly PathTarget[]): (key: string) => boolean {
  return (key) => {
    const { host, path } = splitKey(key);
    for (const url of urls) if (url.path === path && (url.host === undefined || url.host === host)) return true;
    for (const prefix of prefixes) if (path.startsWith(prefix.path) && (prefix.host === undefined || prefix.host === host)) return true;
    return false;
  };
}

/** The one key a URL names when it cannot stand for several (a fixed host and no key headers). */
export function exactKey(target: PathTarget, keyOptions: KeyOptions): string | undefined {
  return target.host === undefined || keyOptions.headers.length > 0 ? undefined : target.host + target.path;
}

/** One purge per kind a request names, in a fixed order; a variant named twice is purged (and counted) by the first. */
export function splitByKind(spec: PurgeSpec): { readonly kind: PurgeKind; readonly spec: PurgeSpec }[] {
  const none = { urls: [], tags: [], prefixes: [], all: false, mode: spec.mode };
  const parts: { kind: PurgeKind; spec: PurgeSpec }[] = [];
  if (spec.urls.length > 0) parts.push({ kind: 'url', spec: { ...none, urls: spec.urls } });
  if (spec.tags.length > 0) parts.push({ kind: 'tag', spec: { ...none, tags: spec.tags } });
  if (spec.prefixes.length > 0) parts.push({ kind: 'prefix', spec: { ...none, prefixes: spec.prefixes } });
  if (spec.all) parts.push({ kind: 'all', spec: { ...none, all: true } });
  return parts;
}
