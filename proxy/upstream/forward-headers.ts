import { hasField, setField, tokenList, type HeaderMap } from '../http/headers.js';

/**
 * Header rewriting at the proxy's two boundaries (RFC 9110 §7.6): hop-by-hop
 * fields never cross, Via records us, X-Forwarded-* tell the origin who
 * asked, and headers that could poison the cache are removed.
 */

/** Connection-specific fields (RFC 9110 §7.6.1), plus the legacy ones peers still send. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/** A copy of `headers` without hop-by-hop fields and the fields the Connection header names. */
export function withoutHopByHop(headers: HeaderMap): HeaderMap {
  const named = tokenList(headers, 'connection');
  const copy: HeaderMap = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || named.includes(name) || headers[name] === undefined) continue;
    setField(copy, name, headers[name]);
  }
  return copy;
}

/** The request fields removed against poisoning: the configured ones, except those the key names (they are keyed, so safe). */
export function strippedFields(stripHeaders: readonly string[], keyHeaders: readonly string[]): string[] {
  return stripHeaders.filter((name) => !keyHeaders.includes(name));
}

/**
 * The request fields the origin will receive: without hop-by-hop fields,
 * the fields Connection names, and the fields stripped against poisoning.
 * Keys and variants are computed from these, never from the raw request: a
 * field the origin never saw must not select what is stored (a client
 * sending `Accept-Language: fr` with `Connection: accept-language` would
 * otherwise store the default language as the French variant). Answers the
 * same object when there is nothing to remove, as for most requests.
 */
export function headersOriginSees(headers: HeaderMap, strip: readonly string[]): HeaderMap {
  if (!hasFieldsToRemove(headers, strip)) return headers;
  const kept = withoutHopByHop(headers);
  for (const name of strip) delete kept[name];
  // Connection itself stays: it still governs the client's own connection.
  if (headers['connection'] !== undefined) kept['connection'] = headers['connection'];
  return kept;
}

function hasFieldsToRemove(headers: HeaderMap, strip: readonly string[]): boolean {
  for (const name of strip) if (hasField(headers, name)) return true;
  for (const name of HOP_BY_HOP) if (!CONNECTION_FIELDS.has(name) && headers[name] !== undefined) return true;
  return namesOtherFields(headers);
}

/** Connection and Keep-Alive are removed too, but their presence alone changes nothing a key or variant reads. */
const CONNECTION_FIELDS = new Set(['connection', 'keep-alive']);

/** Whether the Connection header names a field the request carries, which the origin will then not see. */
function namesOtherFields(headers: HeaderMap): boolean {
  if (headers['connection'] === undefined) return false;
  for (const name of tokenList(headers, 'connection')) if (!HOP_BY_HOP.has(name) && Object.hasOwn(headers, name)) return true;
  return false;
}

/**
 * The request fields whose presence alone means the origin sees other
 * fields than the client sent (stripped and hop-by-hop ones); with
 * `connectionNamesOthers`, the same question as headersOriginSees asks,
 * for a caller that already walks the request's field names once.
 */
export function fieldsOriginDoesNotSee(strip: readonly string[]): Set<string> {
  return new Set([...strip, ...[...HOP_BY_HOP].filter((name) => !CONNECTION_FIELDS.has(name))]);
}

export { namesOtherFields as connectionNamesOthers };

export interface ForwardContext {
  /** The client's address as the socket reports it. */
  readonly clientIp: string;
  readonly protocol: 'http' | 'https';
  /** The Host the client asked for. */
  readonly host: string;
  /** Our Via token, e.g. "1.1 lacquer". */
  readonly via: string;
  /** The Host to send upstream (the origin's own, or the client's when preserving it). */
  readonly upstreamHost: string;
  /** Request headers removed to prevent poisoning, already excluding keyed ones. */
  readonly strip: readonly string[];
  /** Our Surrogate-Capability member, e.g. `lacquer="Surrogate/1.0"`, so origins can target Surrogate-Control at us. */
  readonly surrogateCapability: string;
}

/** The request headers sent to the origin for a client request. */
export function upstreamRequestHeaders(client: HeaderMap, context: ForwardContext): HeaderMap {
  const headers = withoutHopByHop(client);
  for (const name of context.strip) delete headers[name];
  // Expect was for us: Node has already sent the client its 100 (Continue), and the body follows on its own (RFC 9110 §10.1.1).
  delete headers['expect'];
  headers['host'] = context.upstreamHost;
  headers['via'] = appendToList(headers['via'], context.via);
  headers['x-forwarded-for'] = appendToList(headers['x-forwarded-for'], context.clientIp);
  headers['x-forwarded-proto'] = context.protocol;
  // Set from the keyed Host, never passed through from the client: an unkeyed X-Forwarded-Host poisons caches.
  headers['x-forwarded-host'] = context.host;
  headers['surrogate-capability'] = appendToList(headers['surrogate-capability'], context.surrogateCapability);
  return headers;
}

/** The response headers passed to the client, with our Via added. */
export function downstreamResponseHeaders(origin: HeaderMap, via: string): HeaderMap {
  const headers = withoutHopByHop(origin);
  headers['via'] = appendToList(headers['via'], via);
  return headers;
}

function appendToList(existing: string | string[] | undefined, member: string): string {
  if (existing === undefined) return member;
  const joined = Array.isArray(existing) ? existing.join(', ') : existing;
  return joined === '' ? member : `${joined}, ${member}`;
}
