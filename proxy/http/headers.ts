/**
 * Small helpers over Node's header objects (lower-case names, values that
 * are a string, an array of strings for repeated fields, or absent).
 */

export type HeaderValue = string | string[] | undefined;
export type HeaderMap = Record<string, HeaderValue>;
/** Headers as stored in an entry and sent on a hit: no undefined values. */
export type StoredHeaders = Record<string, string | string[]>;

/** One field value; repeated fields are combined with ", " as RFC 9110 §5.3 allows. */
export function headerValue(headers: HeaderMap, name: string): string | undefined {
  const value = headers[name];
  if (typeof value === 'string') return value;
  // Anything else is absent, including what a name like `constructor` finds on the prototype.
  return Array.isArray(value) ? value.join(', ') : undefined;
}

/**
 * Splits a comma-separated list (RFC 9110 §5.6.1), leaving commas inside
 * quoted strings alone so `no-cache="a, b"` stays one member.
 */
export function splitList(value: string): string[] {
  const members: string[] = [];
  let start = 0;
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x5c /* \ */ && quoted) {
      i++;
    } else if (c === 0x22 /* " */) {
      quoted = !quoted;
    } else if (c === 0x2c /* , */ && !quoted) {
      pushTrimmed(members, value.slice(start, i));
      start = i + 1;
    }
  }
  pushTrimmed(members, value.slice(start));
  return members;
}

function pushTrimmed(into: string[], member: string): void {
  const trimmed = member.trim();
  if (trimmed !== '') into.push(trimmed);
}

/** The token names of a list-valued header, lower-cased (e.g. Vary, Connection). */
export function tokenList(headers: HeaderMap, name: string): string[] {
  const value = headerValue(headers, name);
  if (value === undefined) return [];
  return splitList(value).map((token) => token.toLowerCase());
}

/** Removes a quoted-string's quotes and backslash escapes (RFC 9110 §5.6.4). */
export function unquote(value: string): string {
  if (value.length < 2 || value[0] !== '"' || value[value.length - 1] !== '"') return value;
  return value.slice(1, -1).replace(/\\(.)/g, '$1');
}

/** Parses an HTTP-date (RFC 9110 §5.6.7); NaN when it is not one. See date.ts. */
export { parseHttpDate } from './date.js';

/**
 * Whether a Content-Type field value is one `type/subtype` with optional
 * parameters (RFC 9110 §8.3.1), given as a single field: a value the
 * framework's writer keeps as it is. It replaces anything else on a Buffer
 * body with application/octet-stream.
 */
export function isSingleMediaType(value: string | string[] | undefined): value is string {
  return typeof value === 'string' && MEDIA_TYPE.test(value);
}

const MEDIA_TYPE = /^\s*[\w!#$%&'*+.^`|~-]+\/[\w!#$%&'*+.^`|~-]+\s*(?:;|$)/;
