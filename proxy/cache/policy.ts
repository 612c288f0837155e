import CachePolicy from 'http-cache-semantics';
import type { Body } from './body.js';
import { compactHeaders, flat } from './compact.js';
import type { CacheOptions, TagOptions } from '../../config/types.js';
import { headerValue, setField, splitList, tokenList, type HeaderMap, type StoredHeaders } from '../http/headers.js';
import { deltaSeconds, parseCacheControl, parseSurrogateControl, parseTargetedCacheControl, qualifiedFields, type Directives } from './cache-control.js';
import { ENTRY_OVERHEAD_BYTES, headersSize, withBody, type Entry } from './entry.js';
import { correctedInitialAge, freshnessLifetime, type Lifetime, type ResponseFacts } from './freshness.js';

/**
 * Whether and how a response may be stored by a shared cache (RFC 9111 §3),
 * and the entry it becomes. http-cache-semantics' `storable()` is the first
 * gate; around it we guard what it gets wrong for a shared cache:
 *  - its Cache-Control split breaks quoted lists, so it is fed our parse;
 *  - it reads only Cache-Control, so CDN-Cache-Control (RFC 9213) is mapped in;
 *  - it would store 206s and POSTs with explicit freshness; we store GET only;
 *  - it knows nothing of must-understand, Set-Cookie policy or Vary: *.
 */

export type NotStoredReason =
  | 'method'
  | 'request-no-store'
  | 'no-store'
  | 'private'
  | 'authorization'
  | 'set-cookie'
  | 'vary-star'
  | 'status'
  | 'no-lifetime';

export type StorageVerdict =
  | { readonly store: false; readonly reason: NotStoredReason }
  | { readonly store: true; readonly plan: EntryPlan };

/** Everything about a storable response except its body. */
export interface EntryPlan {
  readonly status: number;
  readonly headers: StoredHeaders;
  readonly vary: readonly string[];
  readonly lifetime: Lifetime;
  readonly initialAge: number;
  readonly requestTime: number;
  readonly responseTime: number;
  readonly staleWhileRevalidate: number;
  readonly staleIfError: number;
  readonly noCache: boolean;
  readonly mustRevalidate: boolean;
  readonly immutable: boolean;
  readonly sharedWithAuthorization: boolean;
  readonly tags: readonly string[];
}

export interface ResponseUnderJudgement {
  readonly requestMethod: string;
  readonly requestHeaders: HeaderMap;
  readonly status: number;
  /** Response headers, hop-by-hop fields already removed. */
  readonly headers: HeaderMap;
  readonly requestTime: number;
  readonly responseTime: number;
}

export interface PolicyOptions {
  readonly cache: CacheOptions;
  readonly tags: TagOptions;
  /** How long a stale entry with validators is kept for conditional revalidation. */
  readonly keepWithValidators: number;
  readonly random: () => number;
}

/**
 * Status codes whose semantics we know (for must-understand, RFC 9111 §5.2.2.3).
 * Any other final status may still be stored with explicit freshness (§3).
 */
const UNDERSTOOD_STATUSES = new Set([200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501]);

/** Final statuses a cache can store at all: not 206 (ranges are served from complete entries) nor 304. */
function storableStatus(status: number): boolean {
  return status >= 200 && status <= 599 && status !== 206 && status !== 304;
}

/**
 * The directives that govern this cache, most specific first:
 * Surrogate-Control members for us, then CDN-Cache-Control (RFC 9213 §2.1),
 * then Cache-Control.
 */
export function responseDirectives(headers: HeaderMap, surrogateTarget: string): Directives {
  const surrogate = parseSurrogateControl(headerValue(headers, 'surrogate-control'), surrogateTarget);
  if (surrogate.size > 0) return surrogate;
  // A targeted field that is not a valid Structured Field, or names nothing we use, is ignored (RFC 9213 §2.1).
  const targeted = parseTargetedCacheControl(headerValue(headers, 'cdn-cache-control'));
  if (targeted !== undefined && targeted.size > 0) return targeted;
  return parseCacheControl(headerValue(headers, 'cache-control'));
}

export function requestDirectives(headers: HeaderMap): Directives {
  return parseCacheControl(headerValue(headers, 'cache-control'));
}

export function judgeResponse(response: ResponseUnderJudgement, options: PolicyOptions): StorageVerdict {
  const { status, headers } = response;
  if (response.requestMethod !== 'GET') return notStored('method');
  const directives = responseDirectives(headers, options.cache.name);
  const requestCc = requestDirectives(response.requestHeaders);
  if (options.cache.honorRequestCacheControl && requestCc.has('no-store')) return notStored('request-no-store');

  // must-understand (RFC 9111 §5.2.2.3): a cache that understands the status may ignore no-store; one that does not must not store.
  const mustUnderstand = directives.has('must-understand');
  if (mustUnderstand && !UNDERSTOOD_STATUSES.has(status)) return notStored('status');
  if (directives.has('no-store') && !mustUnderstand) return notStored('no-store');
  if (directives.get('private') === true) return notStored('private');
  if (!storableStatus(status)) return notStored('status');

  const vary = tokenList(headers, 'vary');
  if (vary.includes('*')) return notStored('vary-star');

  const hasAuthorization = response.requestHeaders['authorization'] !== undefined;
  const sharedWithAuthorization = directives.has('public') || directives.has('s-maxage') || directives.has('must-revalidate');
  if (hasAuthorization && !sharedWithAuthorization) return notStored('authorization');

  const strippedFields = new Set([...(qualifiedFields(directives, 'no-cache') ?? []), ...(qualifiedFields(directives, 'private') ?? [])]);
  const setCookie = headers['set-cookie'] !== undefined && !strippedFields.has('set-cookie');
  if (setCookie && options.cache.setCookie === 'pass') return notStored('set-cookie');

  const explicitFreshness = directives.has('s-maxage') || directives.has('max-age') || headers['expires'] !== undefined;
  // `public` permits storing a final response of any status, even one whose semantics we do not know (RFC 9111 §3).
  if (!explicitFreshness && !directives.has('public') && !libraryAllowsStoring(response, directives)) return notStored('status');

  const facts = factsOf(status, headers, directives);
  const lifetime = freshnessLifetime(facts, response.responseTime, options.cache, options.random);
  const noCache = directives.get('no-cache') === true;
  const explicitStale = directives.has('stale-while-revalidate') || directives.has('stale-if-error');
  const mustRevalidate =
    noCache ||
    directives.has('must-revalidate') ||
    directives.has('proxy-revalidate') ||
    // s-maxage implies proxy-revalidate (RFC 9111 §5.2.2.10), unless the origin explicitly allows stale use.
    (directives.has('s-maxage') && !explicitStale);
  const staleWhileRevalidate = mustRevalidate ? 0 : staleWindow(directives, 'stale-while-revalidate', options.cache.staleWhileRevalidate);
  const staleIfError = mustRevalidate ? 0 : staleWindow(directives, 'stale-if-error', options.cache.staleIfError);
  const hasValidator = headers['etag'] !== undefined || headers['last-modified'] !== undefined;
  // Only the origin's own stale windows make an otherwise unusable response worth storing:
  // the configured defaults (grace) extend what is stored anyway, they do not store more.
  const explicitWindow = (staleWhileRevalidate > 0 && directives.has('stale-while-revalidate')) || (staleIfError > 0 && directives.has('stale-if-error'));
  const usable = lifetime.ms > 0 || explicitWindow || hasValidator;
  if (!usable) return notStored('no-lifetime');

  const tags = tagsOf(headers, options.tags.headers, options.tags.maxPerEntry);
  const removed = new Set<string>(strippedFields);
  if (setCookie) removed.add('set-cookie');
  if (options.tags.strip) for (const name of options.tags.headers) removed.add(name);
  // Surrogate-Control is addressed to surrogates like us; clients never see it.
  removed.add('surrogate-control');

  return {
    store: true,
    plan: {
      status,
      headers: storedHeaders(headers, removed),
      vary,
      lifetime,
      initialAge: correctedInitialAge(facts, response.requestTime, response.responseTime),
      requestTime: response.requestTime,
      responseTime: response.responseTime,
      staleWhileRevalidate,
      staleIfError,
      noCache,
      mustRevalidate,
      immutable: directives.has('immutable'),
      sharedWithAuthorization,
      tags,
    },
  };
}

/** The library's verdict on the parts it judges well (status classes, explicit expiry or default cacheability). */
function libraryAllowsStoring(response: ResponseUnderJudgement, directives: Directives): boolean {
  const sanitized: Record<string, string> = {};
  const expires = headerValue(response.headers, 'expires');
  if (expires !== undefined) sanitized['expires'] = expires;
  // Re-serialize only the directives it needs, from our parse: no-store/private were judged above.
  const cc: string[] = [];
  for (const name of ['max-age', 's-maxage', 'public']) if (directives.has(name)) cc.push(name === 'public' ? name : `${name}=0`);
  if (cc.length > 0) sanitized['cache-control'] = cc.join(', ');
  const request = { method: 'GET', url: '/', headers: {} };
  const policy = new CachePolicy(request, { status: response.status, headers: sanitized }, { shared: true });
  return policy.storable();
}

function staleWindow(directives: Directives, name: string, fallback: number): number {
  const seconds = deltaSeconds(directives, name);
  if (seconds === undefined) return fallback;
  return (seconds ?? 0) * 1000;
}

export function factsOf(status: number, headers: HeaderMap, directives: Directives): ResponseFacts {
  return {
    status,
    directives,
    date: headerValue(headers, 'date'),
    expires: headerValue(headers, 'expires'),
    lastModified: headerValue(headers, 'last-modified'),
    age: headerValue(headers, 'age'),
  };
}

function tagsOf(headers: HeaderMap, tagHeaders: readonly string[], max: number): string[] {
  const tags = new Set<string>();
  for (const name of tagHeaders) {
    const value = headerValue(headers, name);
    if (value === undefined) continue;
    // Surrogate-Key separates with spaces, Cache-Tag with commas; accept both in either.
    for (const member of splitList(value)) {
      for (const tag of member.split(/\s+/)) {
        if (tag === '') continue;
        tags.add(tag);
        if (tags.size === max) return [...tags];
      }
    }
  }
  return [...tags];
}

/**
 * What an entry's tags cost: the strings, kept with the entry and as keys of
 * the tag index, and the index's link to the entry. Counted in the entry's
 * size so the memory bound covers them (tag headers are usually stripped, so
 * the stored headers do not).
 */
function tagsSize(tags: readonly string[]): number {
  let bytes = 0;
  for (const tag of tags) bytes += 2 * tag.length + TAG_LINK_BYTES;
  return bytes;
}

/** The tag index's cost per tag of an entry beyond the tag itself (a Set member and its share of the maps), roughly. */
const TAG_LINK_BYTES = 64;

/** The headers kept with an entry: Age is recomputed on every delivery, so it is never stored. */
function storedHeaders(headers: HeaderMap, removed: ReadonlySet<string>): StoredHeaders {
  const kept: StoredHeaders = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || name === 'age' || removed.has(name)) continue;
    setField(kept, name, value);
  }
  return kept;
}

function notStored(reason: NotStoredReason): StorageVerdict {
  return { store: false, reason };
}

/** Turns a plan and its body into an entry with every absolute time computed once. */
export function makeEntry(plan: EntryPlan, key: string, variant: string, body: Body, storedAt: number, keepWithValidators: number): Entry {
  const freshUntil = plan.noCache ? plan.responseTime : plan.responseTime + plan.lifetime.ms - plan.initialAge;
  const staleWhileRevalidateUntil = freshUntil + plan.staleWhileRevalidate;
  const staleIfErrorUntil = freshUntil + plan.staleIfError;
  // Kept for hours, possibly by the million: shared header values, a flat key, one empty array for all (compact.ts).
  const headers = compactHeaders(plan.headers);
  const etag = typeof headers['etag'] === 'string' ? headers['etag'] : undefined;
  const lastModified = typeof headers['last-modified'] === 'string' ? headers['last-modified'] : undefined;
  const keep = etag !== undefined || lastModified !== undefined ? keepWithValidators : 0;
  const fields: Omit<Entry, 'body'> = {
    key: flat(key),
    vary: plan.vary.length === 0 ? NONE : plan.vary,
    variant,
    status: plan.status,
    headers,
    etag,
    lastModified,
    tags: plan.tags.length === 0 ? NONE : plan.tags,
    requestTime: plan.requestTime,
    responseTime: plan.responseTime,
    initialAge: plan.initialAge,
    storedAt,
    freshUntil,
    staleWhileRevalidateUntil,
    staleIfErrorUntil,
    deleteAt: Math.max(freshUntil, staleWhileRevalidateUntil, staleIfErrorUntil) + keep,
    noCache: plan.noCache,
    mustRevalidate: plan.mustRevalidate,
    immutable: plan.immutable,
    sharedWithAuthorization: plan.sharedWithAuthorization,
    size: body.length + headersSize(headers) + key.length + variant.length + tagsSize(plan.tags) + ENTRY_OVERHEAD_BYTES,
  };
  return withBody(fields, body);
}

/** The empty Vary and tag list every entry without them shares. */
const NONE: readonly string[] = Object.freeze([]);
