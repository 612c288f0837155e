import { deltaSeconds, type Directives } from './cache-control.js';
import { parseHttpDate } from '../http/headers.js';

/**
 * Freshness arithmetic for a shared cache (RFC 9111 §4.2), as pure functions
 * of parsed headers and times. All times are epoch milliseconds; lifetimes
 * are milliseconds. Nothing here reads a clock.
 */

/** Status codes that are heuristically cacheable (RFC 9110 §15.1). */
export const HEURISTICALLY_CACHEABLE = new Set([200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501]);

export interface LifetimeOptions {
  heuristicFraction: number;
  heuristicMaxTtl: number;
  defaultTtl: number;
  negativeTtl: number;
  jitter: number;
}

export type LifetimeSource = 's-maxage' | 'max-age' | 'expires' | 'heuristic' | 'negative-ttl' | 'default-ttl' | 'none';

export interface Lifetime {
  ms: number;
  source: LifetimeSource;
}

export interface ResponseFacts {
  status: number;
  directives: Directives;
  date: string | undefined;
  expires: string | undefined;
  lastModified: string | undefined;
  age: string | undefined;
}

/**
 * The freshness lifetime (RFC 9111 §4.2.1): s-maxage, then max-age, then
 * Expires, then a heuristic (§4.2.2); then the lifetimes Lacquer assigns
 * itself from config. `random` returns a number in [0, 1) for the jitter.
 */
export function freshnessLifetime(facts: ResponseFacts, responseTime: number, options: LifetimeOptions, random: () => number): Lifetime {
  const { directives } = facts;
  // An Age that is not a single non-negative integer makes the freshness information unusable: treat as stale.
  if (facts.age !== undefined && !/^\d+$/.test(facts.age.trim())) return { ms: 0, source: 'none' };
  const sMaxAge = deltaSeconds(directives, 's-maxage');
  if (sMaxAge !== undefined) return { ms: (sMaxAge ?? 0) * 1000, source: 's-maxage' };
  const maxAge = deltaSeconds(directives, 'max-age');
  if (maxAge !== undefined) return { ms: (maxAge ?? 0) * 1000, source: 'max-age' };

  const dateValue = dateOrResponseTime(facts.date, responseTime);
  if (facts.expires !== undefined) {
    // An invalid Expires (e.g. "0") means already expired (RFC 9111 §5.3).
    const expires = parseHttpDate(facts.expires);
    return { ms: Number.isNaN(expires) ? 0 : Math.max(0, expires - dateValue), source: 'expires' };
  }

  const heuristicAllowed = HEURISTICALLY_CACHEABLE.has(facts.status) || directives.has('public');
  const lastModified = parseHttpDate(facts.lastModified);
  if (heuristicAllowed && !Number.isNaN(lastModified) && lastModified < dateValue && options.heuristicFraction > 0) {
    const ms = Math.min((dateValue - lastModified) * options.heuristicFraction, options.heuristicMaxTtl);
    return { ms: jittered(ms, options.jitter, random), source: 'heuristic' };
  }
  if (options.negativeTtl > 0 && (facts.status === 404 || facts.status === 410)) {
    return { ms: jittered(options.negativeTtl, options.jitter, random), source: 'negative-ttl' };
  }
  if (options.defaultTtl > 0 && HEURISTICALLY_CACHEABLE.has(facts.status)) {
    return { ms: jittered(options.defaultTtl, options.jitter, random), source: 'default-ttl' };
  }
  return { ms: 0, source: 'none' };
}

/** Spreads a lifetime by ±fraction so entries stored together do not expire together. */
export function jittered(ms: number, fraction: number, random: () => number): number {
  if (fraction <= 0) return ms;
  return Math.max(0, Math.round(ms * (1 + fraction * (2 * random() - 1))));
}

function dateOrResponseTime(date: string | undefined, responseTime: number): number {
  const parsed = parseHttpDate(date);
  return Number.isNaN(parsed) ? responseTime : parsed;
}

/**
 * corrected_initial_age (RFC 9111 §4.2.3), in milliseconds: the age the
 * response already had when it reached us, allowing for clock skew
 * (apparent age) and for the time the request spent in flight.
 */
export function correctedInitialAge(facts: ResponseFacts, requestTime: number, responseTime: number): number {
  const ageHeader = facts.age === undefined ? NaN : Number(facts.age.split(',')[0]?.trim());
  const ageValue = Number.isFinite(ageHeader) && ageHeader >= 0 ? ageHeader * 1000 : 0;
  const dateValue = parseHttpDate(facts.date);
  const apparentAge = Number.isNaN(dateValue) ? 0 : Math.max(0, responseTime - dateValue);
  const responseDelay = Math.max(0, responseTime - requestTime);
  return Math.max(apparentAge, ageValue + responseDelay);
}

/** current_age (RFC 9111 §4.2.3) in whole seconds, as sent in the Age header. */
export function ageSeconds(initialAge: number, responseTime: number, now: number): number {
  return Math.max(0, Math.floor((initialAge + now - responseTime) / 1000));
}
