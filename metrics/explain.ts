import { EMPTY_DIRECTIVES, type Directives } from '../proxy/cache/cache-control.js';
import { decideLookup, isFresh, mayServeOnError, type LookupDecision } from '../proxy/cache/decide.js';
import { hasValidators, type Entry } from '../proxy/cache/entry.js';
import { ageSeconds } from '../proxy/cache/freshness.js';
import type { RequestTarget } from '../proxy/cache/key.js';
import { requestDirectives } from '../proxy/cache/policy.js';
import { variantOf } from '../proxy/cache/vary.js';
import { remainingTtl, type Outcome } from '../proxy/deliver.js';
import type { HeaderMap } from '../proxy/http/headers.js';

/**
 * What Lacquer would do with a GET for a URL, and why: the key, every
 * stored variant with its ages and windows, and the lookup decision made
 * by the same pure function the flow uses (proxy/cache/decide.ts), so the
 * explanation cannot drift from the behaviour. Nothing here touches the
 * store or the origin.
 */
export interface ExplainInput {
  readonly target: RequestTarget;
  /** The request headers the explanation assumes (Host included). */
  readonly headers: HeaderMap;
  readonly variants: readonly Entry[] | undefined;
  readonly now: number;
  /** The tier the variants were read from. */
  readonly tier: string;
  readonly honorRequestCacheControl: boolean;
}

export interface ExplainReport {
  readonly key: string;
  readonly host: string;
  readonly upstreamPath: string;
  readonly at: string;
  readonly decision: {
    /** The lookup decision (decide.ts). */
    readonly kind: LookupDecision['kind'];
    /** The outcome the request would most likely have, in the Cache-Status / metrics vocabulary. */
    readonly outcome: Outcome;
    readonly why: string;
    /** Index into `variants` of the variant the decision used, or null. */
    readonly variant: number | null;
  };
  readonly variants: readonly VariantReport[];
}

export interface VariantReport {
  readonly tier: string;
  /** The normalized values of the request headers named in Vary ('' when the response does not vary). */
  readonly variant: string;
  readonly vary: readonly string[];
  readonly matchesRequest: boolean;
  readonly status: number;
  readonly storedAt: string;
  /** The Age header a hit would carry now, in seconds (RFC 9111 §4.2.3). */
  readonly ageSeconds: number;
  readonly freshnessLifetimeSeconds: number;
  /** Remaining freshness in seconds, negative once stale (the Cache-Status ttl). */
  readonly ttlSeconds: number;
  readonly fresh: boolean;
  /** Seconds left in which it may be served stale while refreshing (RFC 5861 §3); 0 when closed. */
  readonly staleWhileRevalidateSeconds: number;
  /** Seconds left in which it may stand in for a failing origin (RFC 5861 §4); 0 when closed or forbidden. */
  readonly staleIfErrorSeconds: number;
  /** Seconds until the store drops it. */
  readonly deleteInSeconds: number;
  readonly validators: { readonly etag: string | null; readonly lastModified: string | null };
  readonly cacheControl: string | null;
  readonly noCache: boolean;
  readonly mustRevalidate: boolean;
  readonly immutable: boolean;
  readonly sharedWithAuthorization: boolean;
  readonly tags: readonly string[];
  readonly bytes: number;
}

export function explain(input: ExplainInput): ExplainReport {
  const { now, headers } = input;
  const directives = input.honorRequestCacheControl ? requestDirectives(headers) : EMPTY_DIRECTIVES;
  const hasAuthorization = headers['authorization'] !== undefined;
  const variants = input.variants ?? [];
  const decision = decideLookup(input.variants, { headers, directives, hasAuthorization }, now);
  const chosen = 'entry' in decision ? variants.indexOf(decision.entry) : -1;
  return {
    key: input.target.key,
    host: input.target.host,
    upstreamPath: input.target.upstreamPath,
    at: new Date(now).toISOString(),
    decision: { kind: decision.kind, ...judgement(decision, variants, headers, directives, now), variant: chosen === -1 ? null : chosen },
    variants: variants.map((entry) => describeVariant(entry, headers, now, input.tier)),
  };
}

function judgement(decision: LookupDecision, variants: readonly Entry[], headers: HeaderMap, directives: Directives, now: number): { outcome: Outcome; why: string } {
  const onlyIfCached = directives.has('only-if-cached');
  switch (decision.kind) {
    case 'hit': {
      const entry = decision.entry;
      if (!decision.stale) return { outcome: 'hit', why: `fresh for another ${seconds(entry.freshUntil - now)}s: served from the cache without asking the origin` };
      return { outcome: 'stale', why: `stale by ${seconds(now - entry.freshUntil)}s, served because the request's max-stale accepts it (RFC 9111 §5.2.1.2)` };
    }
    case 'stale-while-revalidate': {
      const entry = decision.entry;
      return {
        outcome: 'stale',
        why: `stale by ${seconds(now - entry.freshUntil)}s but inside stale-while-revalidate for another ${seconds(entry.staleWhileRevalidateUntil - now)}s: served stale at once while one background refresh asks the origin (RFC 5861 §3)`,
      };
    }
    case 'revalidate': {
      if (onlyIfCached) return { outcome: 'error', why: 'the stored variant needs validation but the request said only-if-cached: answered 504 (RFC 9111 §5.2.1.7)' };
      const entry = decision.entry;
      const reason = entry.noCache
        ? 'stored with no-cache, so every use must be validated (RFC 9111 §5.2.2.4)'
        : isFresh(entry, now)
          ? "fresh, but the request's Cache-Control asks for validation (no-cache, max-age or min-fresh)"
          : `stale by ${seconds(now - entry.freshUntil)}s and outside any stale-while-revalidate window`;
      const how = hasValidators(entry)
        ? `sent to the origin as a conditional GET (${entry.etag !== undefined ? 'If-None-Match' : 'If-Modified-Since'}); a 304 freshens the stored entry (RFC 9111 §4.3)`
        : 'the entry has no validators, so the origin is asked for a full response';
      const onError = mayServeOnError(entry, now)
        ? `if the origin fails, the stale entry is served for another ${seconds(entry.staleIfErrorUntil - now)}s (stale-if-error)`
        : 'if the origin fails, the client gets 502/504 (no stale-if-error window, or must-revalidate)';
      return { outcome: 'revalidated', why: `${reason}: ${how}; ${onError}` };
    }
    case 'miss': {
      const fetch = onlyIfCached ? 'the request said only-if-cached, so it is answered 504' : 'fetched from the origin, coalesced with concurrent requests for the same key';
      if (decision.reason === 'uri-miss') return { outcome: onlyIfCached ? 'error' : 'miss', why: `nothing is stored under this key: ${fetch}` };
      if (decision.reason === 'vary-miss') {
        const names = [...new Set(variants.flatMap((entry) => entry.vary))];
        return { outcome: onlyIfCached ? 'error' : 'miss', why: `${variants.length} variant(s) stored, none matching this request's ${names.join(', ') || 'headers'} (Vary, RFC 9111 §4.1): ${fetch}` };
      }
      return {
        outcome: onlyIfCached ? 'error' : 'miss',
        why: `the request carries Authorization and the stored response did not allow sharing it (public, s-maxage or must-revalidate, RFC 9111 §3.5): ${fetch}`,
      };
    }
  }
}

function describeVariant(entry: Entry, headers: HeaderMap, now: number, tier: string): VariantReport {
  const cacheControl = entry.headers['cache-control'];
  return {
    tier,
    variant: entry.variant,
    vary: entry.vary,
    matchesRequest: entry.variant === '' || variantOf(headers, entry.vary) === entry.variant,
    status: entry.status,
    storedAt: new Date(entry.storedAt).toISOString(),
    ageSeconds: ageSeconds(entry.initialAge, entry.responseTime, now),
    freshnessLifetimeSeconds: Math.round((entry.freshUntil - entry.responseTime + entry.initialAge) / 1000),
    ttlSeconds: remainingTtl(entry, now),
    fresh: isFresh(entry, now),
    staleWhileRevalidateSeconds: seconds(entry.staleWhileRevalidateUntil - now),
    staleIfErrorSeconds: mayServeOnError(entry, now) ? seconds(entry.staleIfErrorUntil - now) : 0,
    deleteInSeconds: seconds(entry.deleteAt - now),
    validators: { etag: entry.etag ?? null, lastModified: entry.lastModified ?? null },
    cacheControl: cacheControl === undefined ? null : Array.isArray(cacheControl) ? cacheControl.join(', ') : cacheControl,
    noCache: entry.noCache,
    mustRevalidate: entry.mustRevalidate,
    immutable: entry.immutable,
    sharedWithAuthorization: entry.sharedWithAuthorization,
    tags: entry.tags,
    bytes: entry.size,
  };
}

/** Whole seconds of a non-negative span (rounded up, so a window with 200 ms left is not reported closed). */
function seconds(ms: number): number {
  return ms <= 0 ? 0 : Math.ceil(ms / 1000);
}
