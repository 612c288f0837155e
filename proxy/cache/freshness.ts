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
  const sMaxAge = deltaSeconds(directives, 's-maxage');
  if (sMaxAge !== undefined) return { ms: (sMaxAge ?? 0) * 1000, source: 's-maxage' };
  const maxAge = deltaSeconds(directives, 'max-age');
  if (maxAge !== undefined) return { ms: (maxAge ?? 0) * 1000, source: 'max-age' };

  const dateValue = dateOrResponseTime(facts.date, responseTime);
  if (facts.expires !== undefined) {
    // An invalid Expires (e.g. "0") means already expired (RFC 9111 §5.3).
    const expires = parseHttpDate(facts.expires, responseTime);
    return { ms: Number.isNaN(expires) ? 0 : Math.max(0, expires - dateValue), source: 'expires' };
  }

  const heuristicAllowed = HEURISTICALLY_CACHEABLE.has(facts.status) || directives.has('public');
  const lastModified = parseHttpDate(facts.lastModified, responseTime);
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
  const parsed = parseHttpDate(date, responseTime);
  return Number.isNaN(parsed) ? responseTime : parsed;
}

/**
 * corrected_initial_age (RFC 9111 §4.2.3), in milliseconds: the age the
 * response already had when it reached us, allowing for clock skew
 * (apparent age) and for the time the request spent in flight.
 */
export function correctedInitialAge(facts: ResponseFacts, requestTime: number, responseTime: number): number {
  const ageValue = (ageFieldSeconds(facts.age) ?? 0) * 1000;
  const dateValue = parseHttpDate(facts.date, responseTime);
  const apparentAge = Number.isNaN(dateValue) ? 0 : Math.max(0, responseTime - dateValue);
  const responseDelay = Math.max(0, responseTime - requestTime);
  return Math.max(apparentAge, ageValue + responseDelay);
}

/**
 * The Age field's value in seconds (RFC 9111 §5.1), or undefined when it is
 * to be ignored. Age is a singleton field, but a list (one line `0, 7200` or
 * several lines, which arrive joined) is read by its first member, and a
 * value that is not a non-negative integer (`-1`, `1.5`, `abc`) is ignored:
 * the Date header and the time in flight still bound the response's age.
 * Values too large to represent are capped to 2^31 seconds (§1.2.2).
 */
export function ageFieldSeconds(age: string | undefined): number | undefined {
  if (age === undefined) return undefined;
  const first = age.split(',', 1)[0]!.trim();
  if (!/^\d+$/.test(first)) return undefined;
  return Math.min(Number(first), 2 ** 31);
}

/** current_age (RFC 9111 §4.2.3) in whole seconds, as sent in the Age header. */
export function ageSeconds(initialAge: number, responseTime: number, now: number): number {
  return Math.max(0, Math.floor((initialAge + now - responseTime) / 1000));
}
