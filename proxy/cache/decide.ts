import { deltaSeconds, type Directives } from './cache-control.js';
import type { Entry } from './entry.js';
import { ageSeconds } from './freshness.js';
import { variantOf } from './vary.js';
import type { HeaderMap } from '../http/headers.js';

/**
 * The lookup decision (RFC 9111 §4): given what the store holds for a key
 * and the request, what may be done without asking the origin. A pure
 * function of its arguments; the flow carries the decision out.
 */
export type LookupDecision =
  /** A fresh (or acceptably stale, by the client's max-stale) entry: deliver it. */
  | { readonly kind: 'hit'; readonly entry: Entry; readonly stale: boolean }
  /** Stale within stale-while-revalidate: deliver it and refresh in the background. */
  | { readonly kind: 'stale-while-revalidate'; readonly entry: Entry }
  /** Stale or must be validated: ask the origin with the entry's validators. */
  | { readonly kind: 'revalidate'; readonly entry: Entry }
  /** Nothing usable stored. */
  | { readonly kind: 'miss'; readonly reason: MissReason };

/** RFC 9211 §2.2 fwd values for a miss. */
export type MissReason = 'uri-miss' | 'vary-miss' | 'miss';

export interface LookupRequest {
  readonly headers: HeaderMap;
  /** The request's Cache-Control, or an empty map when the config ignores it. */
  readonly directives: Directives;
  readonly hasAuthorization: boolean;
}

export function decideLookup(variants: readonly Entry[] | undefined, request: LookupRequest, now: number): LookupDecision {
  if (variants === undefined || variants.length === 0) return { kind: 'miss', reason: 'uri-miss' };
  const entry = selectVariant(variants, request.headers, now);
  if (entry === undefined) return { kind: 'miss', reason: 'vary-miss' };
  // RFC 9111 §3.5: a response stored for one client is given to an authenticated request only if it says it may be.
  if (request.hasAuthorization && !entry.sharedWithAuthorization) return { kind: 'miss', reason: 'miss' };

  const fresh = isFresh(entry, now);
  if (fresh && (entry.immutable || !clientWantsValidation(entry, request.directives, now))) return { kind: 'hit', entry, stale: false };
  if (!fresh && clientAcceptsStale(entry, request.directives, now)) return { kind: 'hit', entry, stale: true };
  if (!fresh && now < entry.staleWhileRevalidateUntil && !request.directives.has('no-cache')) {
    return { kind: 'stale-while-revalidate', entry };
  }
  return { kind: 'revalidate', entry };
}

/** The newest stored variant whose Vary values match the request and is not past deleteAt. */
export function selectVariant(variants: readonly Entry[], headers: HeaderMap, now: number): Entry | undefined {
  let best: Entry | undefined;
  for (const entry of variants) {
    if (entry.deleteAt <= now) continue;
    if (entry.variant !== '' && variantOf(headers, entry.vary) !== entry.variant) continue;
    if (best === undefined || entry.storedAt > best.storedAt) best = entry;
  }
  return best;
}

export function isFresh(entry: Entry, now: number): boolean {
  return !entry.noCache && now < entry.freshUntil;
}

/** The client's own limits on freshness (RFC 9111 §5.2.1): no-cache, max-age, min-fresh. */
function clientWantsValidation(entry: Entry, directives: Directives, now: number): boolean {
  if (directives.size === 0) return false;
  if (directives.has('no-cache')) return true;
  const maxAge = deltaSeconds(directives, 'max-age');
  if (maxAge !== undefined && (maxAge === null || ageSeconds(entry.initialAge, entry.responseTime, now) > maxAge)) return true;
  const minFresh = deltaSeconds(directives, 'min-fresh');
  if (minFresh !== undefined && (minFresh === null || entry.freshUntil - now < minFresh * 1000)) return true;
  return false;
}

/**
 * max-stale (RFC 9111 §5.2.1.2) lets a client accept a stale response, but
 * never one the origin forbade serving stale (must-revalidate, no-cache, …).
 */
function clientAcceptsStale(entry: Entry, directives: Directives, now: number): boolean {
  if (entry.mustRevalidate || !directives.has('max-stale') || directives.has('no-cache')) return false;
  const maxStale = deltaSeconds(directives, 'max-stale');
  if (maxStale === null) return directives.get('max-stale') === true;
  return maxStale === undefined || now - entry.freshUntil <= maxStale * 1000;
}

/** Whether the stored entry may stand in for an origin that failed (RFC 5861 §4). */
export function mayServeOnError(entry: Entry, now: number): boolean {
  return !entry.mustRevalidate && now < entry.staleIfErrorUntil;
}
