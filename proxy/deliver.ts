import type { Readable } from 'node:stream';
import { isFileBody, streamFileBody, type Body } from './cache/body.js';
import { clientHasCurrent } from './cache/conditional.js';
import type { Entry } from './cache/entry.js';
import { ageSeconds } from './cache/freshness.js';
import { setField, type HeaderMap, type StoredHeaders } from './http/headers.js';
import { rangeFor } from './cache/range.js';

/**
 * What the proxy answers, as data: the flow decides it and a thin shell
 * (server.ts) writes it. Outcomes use one vocabulary everywhere: the
 * Cache-Status header, the metrics labels and the logs.
 */
export type Outcome = 'hit' | 'stale' | 'revalidated' | 'miss' | 'pass' | 'hitmiss' | 'error';

export interface Delivery {
  readonly status: number;
  readonly headers: HeaderMap;
  /** null for HEAD, 304 and bodiless statuses. */
  readonly body: Buffer | Readable | null;
  readonly outcome: Outcome;
}

/** The parameters of one Cache-Status member (RFC 9211 §2). */
export interface CacheStatusFacts {
  readonly hit?: boolean;
  /** Why the request went forward: uri-miss, vary-miss, miss, request, stale, method, bypass. */
  readonly fwd?: 'uri-miss' | 'vary-miss' | 'miss' | 'request' | 'stale' | 'method' | 'bypass';
  readonly fwdStatus?: number;
  readonly stored?: boolean;
  readonly collapsed?: boolean;
  /** Remaining freshness in seconds (negative when stale). */
  readonly ttl?: number;
  readonly detail?: string;
}

/**
 * `facts` with the fields of `more` put over them. Written out field by
 * field rather than as `{ ...facts, fwdStatus }`: on Node 20 an object spread
 * followed by further fields takes a slow runtime path (about a microsecond
 * per object on the bench box, and the result is slow to read as well),
 * and the pass-through path builds one of these per request.
 */
export function withFacts(facts: CacheStatusFacts, more: CacheStatusFacts): CacheStatusFacts {
  return {
    hit: more.hit ?? facts.hit,
    fwd: more.fwd ?? facts.fwd,
    fwdStatus: more.fwdStatus ?? facts.fwdStatus,
    stored: more.stored ?? facts.stored,
    collapsed: more.collapsed ?? facts.collapsed,
    ttl: more.ttl ?? facts.ttl,
    detail: more.detail ?? facts.detail,
  };
}

export function cacheStatus(name: string, facts: CacheStatusFacts): string {
  let value = name;
  if (facts.hit === true) value += '; hit';
  if (facts.fwd !== undefined) value += `; fwd=${facts.fwd}`;
  if (facts.fwdStatus !== undefined) value += `; fwd-status=${facts.fwdStatus}`;
  if (facts.stored === true) value += '; stored';
  if (facts.collapsed === true) value += '; collapsed';
  if (facts.ttl !== undefined) value += `; ttl=${facts.ttl}`;
  if (facts.detail !== undefined) value += `; detail=${facts.detail}`;
  return value;
}

/**
 * Remaining freshness in whole seconds, negative once stale (RFC 9211 §2.7):
 * the lifetime minus the Age we send, so the two headers always add up.
 */
export function remainingTtl(entry: Entry, now: number): number {
  if (entry.noCache) return 0;
  const lifetime = Math.round((entry.freshUntil - entry.responseTime + entry.initialAge) / 1000);
  return lifetime - ageSeconds(entry.initialAge, entry.responseTime, now);
}

/**
 * Fields a 304 carries (RFC 9110 §15.4.5): those that would have been sent
 * in a 200 and that guide cache updates, but none describing the body.
 */
const NOT_MODIFIED_FIELDS = ['cache-control', 'content-location', 'date', 'etag', 'expires', 'last-modified', 'vary', 'via'];

export interface EntryDeliveryRequest {
  readonly method: string;
  readonly headers: HeaderMap;
}

/** A stored entry delivered to a client: Age recomputed, 304 when the client already has it, no body for HEAD. */
export function deliverEntry(entry: Entry, request: EntryDeliveryRequest, now: number, outcome: Outcome, status: string): Delivery {
  const age = String(ageSeconds(entry.initialAge, entry.responseTime, now));
  const requestHeaders = request.headers;
  // Most hits carry no validators and no Range: they skip the date parsing and tag matching below.
  if ((requestHeaders['if-none-match'] !== undefined || requestHeaders['if-modified-since'] !== undefined) && clientHasCurrent(requestHeaders, entry)) {
    const headers: HeaderMap = { age, 'cache-status': status };
    for (const name of NOT_MODIFIED_FIELDS) if (entry.headers[name] !== undefined) headers[name] = entry.headers[name];
    return { status: 304, headers, body: null, outcome };
  }
  const headers = withPerResponseFields(entry.headers, age, status);
  const range = entry.status === 200 && requestHeaders['range'] !== undefined ? rangeFor(requestHeaders, entry.body.length, entry) : FULL_RANGE;
  if (range.kind === 'partial') {
    headers['content-range'] = `bytes ${range.start}-${range.end}/${entry.body.length}`;
    headers['content-length'] = String(range.end - range.start + 1);
    return { status: 206, headers, body: request.method === 'HEAD' ? null : slice(entry.body, range.start, range.end), outcome };
  }
  if (range.kind === 'unsatisfiable') {
    return { status: 416, headers: { ...headers, 'content-range': `bytes */${entry.body.length}`, 'content-length': '0' }, body: null, outcome };
  }
  return { status: entry.status, headers, body: request.method === 'HEAD' ? null : whole(entry.body), outcome };
}

/** A Buffer is sent as it is; a file body is streamed from the disk tier. */
function whole(body: Body): Buffer | Readable {
  return isFileBody(body) ? streamFileBody(body) : body;
}

function slice(body: Body, start: number, end: number): Buffer | Readable {
  return isFileBody(body) ? streamFileBody(body, start, end) : body.subarray(start, end + 1);
}

const FULL_RANGE = { kind: 'full' } as const;

/**
 * The stored headers plus this response's Age and Cache-Status, copied with
 * a plain loop: on Node 20 an object spread of a header map followed by new
 * fields takes a slow runtime path (microseconds per hit, measured with the
 * bench), while the loop costs a fraction of that.
 */
function withPerResponseFields(stored: StoredHeaders, age: string, status: string): HeaderMap {
  const headers: HeaderMap = {};
  for (const name in stored) setField(headers, name, stored[name]);
  headers['age'] = age;
  headers['cache-status'] = status;
  return headers;
}

/** A short plain-text answer for errors Lacquer itself produces. */
export function plainDelivery(status: number, message: string, outcome: Outcome, statusHeader: string): Delivery {
  const body = Buffer.from(`${message}\n`);
  return {
    status,
    headers: {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(body.length),
      'cache-control': 'no-store',
      'cache-status': statusHeader,
    },
    body,
    outcome,
  };
}
