/**
 * Small helpers over Node's header objects (lower-case names, values that
 * are a string, an array of strings for repeated fields, or absent).
 */

export type HeaderValue = string | string[] | undefined;
export type HeaderMap = Record<string, HeaderValue>;
/** Headers as stored in an entry and sent on a hit: no undefined values. */
export type StoredHeaders = Record<string, string | string[]>;

/**
 * Sets one field on a header object. A field may be named `__proto__`
 * (any token is a field name, RFC 9110 §5.1), and assigning that name on an
 * ordinary object calls Object.prototype's setter instead of adding a field:
 * a string is dropped, and an array (a repeated field) becomes the object's
 * prototype, whose elements then read as fields named "0", "1", … So that
 * one name is defined as an own field; every other name is a plain
 * assignment, and the object stays an ordinary one (an object without a
 * prototype is slower to build and read in V8).
 */
export function setField<T>(headers: Record<string, T>, name: string, value: NoInfer<T>): void {
  if (name === PROTO) Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
  else headers[name] = value;
}

const PROTO = '__proto__';

/**
 * Node's request parser stores fields with plain assignment, so a request
 * field named `__proto__` never reaches `req.headers` (see setField). This
 * puts it back, from the raw header lines, as Node would have stored it: one
 * value, repeated lines joined with ", ". A name of nine characters is
 * rare, so most requests cost one length comparison per line.
 */
export function restoreProtoField(headers: HeaderMap, rawHeaders: readonly string[]): void {
  let value: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== PROTO.length || name.toLowerCase() !== PROTO) continue;
    const line = rawHeaders[i + 1] ?? '';
    value = value === undefined ? line : `${value}, ${line}`;
  }
  if (value !== undefined && !Object.hasOwn(headers, PROTO)) setField(headers, PROTO, value);
}

/**
 * Whether a field is present. For names that come from configuration or
 * from the origin (Vary, Connection), not `headers[name] !== undefined`:
 * an absent `constructor` or `__proto__` reads Object.prototype's member.
 */
export function hasField(headers: HeaderMap, name: string): boolean {
  const value = headers[name];
  return typeof value === 'string' || Array.isArray(value);
}

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
