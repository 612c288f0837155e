import { headerValue, parseHttpDate, setField, splitList, type HeaderMap } from '../http/headers.js';
import type { Entry } from './entry.js';

/**
 * Conditional requests, both ways:
 *  - a client's If-None-Match / If-Modified-Since evaluated against a stored
 *    entry, so the cache can answer 304 itself (RFC 9111 §4.3.2, RFC 9110 §13.2.2);
 *  - the validators we send when revalidating a stale entry (RFC 9111 §4.3.1).
 */

/** True when the client already has the stored representation, so 304 is the answer. */
export function clientHasCurrent(requestHeaders: HeaderMap, entry: Pick<Entry, 'status' | 'etag' | 'lastModified' | 'headers'>): boolean {
  if (entry.status !== 200) return false;
  const ifNoneMatch = headerValue(requestHeaders, 'if-none-match');
  if (ifNoneMatch !== undefined) {
    // If-None-Match takes precedence; If-Modified-Since is then ignored (RFC 9110 §13.2.2 step 3).
    if (ifNoneMatch.trim() === '*') return true;
    if (entry.etag === undefined) return false;
    const ours = opaqueTag(entry.etag);
    return splitList(ifNoneMatch).some((tag) => opaqueTag(tag) === ours);
  }
  const ifModifiedSince = parseHttpDate(headerValue(requestHeaders, 'if-modified-since'));
  // Without Last-Modified, the stored response's Date is the latest it can have changed (RFC 9110 §13.1.3).
  const lastModified = parseHttpDate(entry.lastModified ?? headerValue(entry.headers, 'date'));
  if (Number.isNaN(ifModifiedSince) || Number.isNaN(lastModified)) return false;
  return lastModified <= ifModifiedSince;
}

/** Weak comparison (RFC 9110 §8.8.3.2): W/ prefixes are ignored. */
function opaqueTag(tag: string): string {
  const trimmed = tag.trim();
  return trimmed.startsWith('W/') ? trimmed.slice(2) : trimmed;
}

/** The conditional headers that ask the origin whether our stored entry is still current. */
export function validatorHeaders(entry: Pick<Entry, 'etag' | 'lastModified'>): Record<string, string> {
  const headers: Record<string, string> = {};
  if (entry.etag !== undefined) headers['if-none-match'] = entry.etag;
  if (entry.lastModified !== undefined) headers['if-modified-since'] = entry.lastModified;
  return headers;
}

/**
 * Header fields a 304 must not change in the stored response: they describe
 * the stored body, which the 304 does not carry (RFC 9111 §3.2).
 */
const KEPT_ON_FRESHEN = new Set(['content-length', 'content-encoding', 'content-range', 'content-md5', 'transfer-encoding']);

/**
 * The stored headers updated with a 304's fields (RFC 9111 §4.3.4, §3.2).
 * A stored ETag is kept even when the 304 names another one: the stored
 * body is what our If-None-Match tag named and what the origin just
 * confirmed as current, so that tag is a field the stored response depends
 * on (§3.2). Taking the 304's tag would pair the old body with a validator
 * that names some other body, and clients revalidating with it would be
 * told their copy of that other body is ours.
 */
export function freshenedHeaders(stored: HeaderMap, notModified: HeaderMap): HeaderMap {
  // A spread copies every own field as a field, `__proto__` included.
  const merged: HeaderMap = { ...stored };
  for (const name in notModified) {
    if (KEPT_ON_FRESHEN.has(name) || notModified[name] === undefined) continue;
    if (name === 'etag' && stored['etag'] !== undefined) continue;
    setField(merged, name, notModified[name]);
  }
  return merged;
}

/**
 * Whether a 304 answers the validators we sent for this entry (RFC 9111 §4.3.4).
 * We send one entry's validators at a time. With an ETag we sent it in
 * If-None-Match, and a 304 says that tag matched (RFC 9110 §13.1.2), so the
 * 304 selects our entry whatever tag it carries itself. Without one we sent
 * only If-Modified-Since; a 304 that then carries an ETag names a
 * representation we cannot tell is ours, so it is not used to freshen.
 */
export function notModifiedMatches(notModified: HeaderMap, entry: Pick<Entry, 'etag' | 'lastModified'>): boolean {
  if (entry.etag !== undefined) return true;
  return headerValue(notModified, 'etag') === undefined;
}
