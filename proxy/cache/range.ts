import { headerValue, parseHttpDate, type HeaderMap } from '../http/headers.js';

/**
 * Byte ranges served from a complete stored response (RFC 9110 §14).
 * One range is answered with 206; several, or a syntax we do not take,
 * are ignored and the whole representation is sent, as §14.2 allows.
 */
export type RangeAnswer =
  | { readonly kind: 'full' }
  | { readonly kind: 'partial'; readonly start: number; readonly end: number }
  | { readonly kind: 'unsatisfiable' };

const FULL: RangeAnswer = { kind: 'full' };

export function rangeFor(requestHeaders: HeaderMap, size: number, validators: { etag: string | undefined; lastModified: string | undefined }): RangeAnswer {
  const range = headerValue(requestHeaders, 'range');
  if (range === undefined) return FULL;
  if (!ifRangeHolds(headerValue(requestHeaders, 'if-range'), validators)) return FULL;
  const match = /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(range);
  if (match === null) return FULL;
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return FULL;
  // An empty representation has no byte to start at (RFC 9110 §14.1.1).
  if (size === 0) return { kind: 'unsatisfiable' };
  if (first === '') {
    // A suffix range: the last N bytes.
    const length = Number(last);
    if (length === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - length), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (last !== '' && Number(last) < start) return FULL;
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end };
}

/** If-Range (RFC 9110 §13.1.5): a strong ETag match, or a Last-Modified date equal to the given one. */
function ifRangeHolds(ifRange: string | undefined, validators: { etag: string | undefined; lastModified: string | undefined }): boolean {
  if (ifRange === undefined) return true;
  const value = ifRange.trim();
  if (value.startsWith('"') || value.startsWith('W/')) return validators.etag !== undefined && !value.startsWith('W/') && value === validators.etag;
  const date = parseHttpDate(value);
  return !Number.isNaN(date) && validators.lastModified !== undefined && date === parseHttpDate(validators.lastModified);
}
