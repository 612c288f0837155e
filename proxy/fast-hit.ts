import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config/types.js';
import { EMPTY_DIRECTIVES } from './cache/cache-control.js';
import { decideLookup } from './cache/decide.js';
import type { Entry } from './cache/entry.js';
import { ageSeconds } from './cache/freshness.js';
import { isHostField, requestTarget } from './cache/key.js';
import { connectionNamesOthers, fieldsOriginDoesNotSee, strippedFields } from './upstream/forward-headers.js';
import { remainingTtl, type Delivery } from './deliver.js';
import { requestChannel, type RequestEvent } from './events.js';
import type { ProxyRequest } from './flow.js';
import { setField, type HeaderMap } from './http/headers.js';
import type { Store } from './store/store.js';

/**
 * The common hit, answered before the web framework sees the request: a
 * plain GET or HEAD whose fresh entry sits in the memory tier. It takes the
 * same decisions as the flow (the same key, the same lookup decision, the
 * same Age and Cache-Status arithmetic) and writes the same status, headers
 * and body; it only skips the framework's routing and reply machinery, the
 * promise of the general path, and the per-request copy of work that can be
 * done once per entry.
 *
 * Anything it cannot answer exactly as the flow would returns false
 * untouched, and the request takes the general path: other methods (PURGE
 * included), conditional and Range requests, a request Cache-Control or
 * Pragma, Authorization, a request body, a miss, a stale entry, a body on
 * disk, a response the framework would change on its way out (a
 * Content-Length that is not the body's, a bodiless status), an entry that
 * varies on `__proto__` or a key that names it (a request field Node's
 * parser drops).
 */

export interface FastHitOptions {
  readonly config: Config;
  readonly store: Store;
  readonly clock: () => number;
}

/** Answers the request and returns true, or returns false having done nothing. */
export type FastHit = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * Request fields that only the general flow acts on. Their absence is what
 * makes a request "plain": no validators or ranges to compare
 * (RFC 9110 §13, §14), no client freshness limits (RFC 9111 §5.2.1, and
 * Pragma's no-cache, §5.4), no credentials (RFC 9111 §3.5), no body.
 */
const GENERAL_FIELDS = [
  'if-none-match',
  'if-modified-since',
  'if-match',
  'if-unmodified-since',
  'if-range',
  'range',
  'cache-control',
  'pragma',
  'authorization',
  'content-length',
  'transfer-encoding',
] as const;

/**
 * Whether a request is one the fast path may answer, judged from its
 * method and field names only: none of the general fields, nor any of
 * `alsoRefused` (the fast path adds the fields the origin would not see).
 * One walk over the request's own fields, which are few, rather than a
 * lookup for every field that matters.
 */
export function plainRequest(method: string | undefined, headers: IncomingHttpHeaders, refused: ReadonlySet<string> = GENERAL_FIELD_SET): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false;
  for (const name in headers) if (refused.has(name)) return false;
  return true;
}

const GENERAL_FIELD_SET: ReadonlySet<string> = new Set(GENERAL_FIELDS);

/**
 * What is worked out once per entry: its header fields as one flat
 * `[name, value, name, value, …]` list ending in Age and Cache-Status, the
 * form `writeHead` takes, or `false` when the general path must answer it.
 * Each answer fills in the last two values and hands the list to
 * `writeHead`, which turns it into bytes before it returns, so one list
 * serves every answer and a hit builds no header object.
 */
interface HeaderBlock {
  readonly fields: (string | string[])[];
  /** `<name>; hit; ttl=`: only the remaining TTL follows. */
  readonly hitStatus: string;
}

/** Where the two per-answer values sit, counted from the end of `fields`. */
const AGE_FROM_END = 3;
const CACHE_STATUS_FROM_END = 1;

/** Statuses the framework sends as they are; 204, 205 and 304 have their own framing rules and take the general path. */
function plainStatus(status: number): boolean {
  return status >= 200 && status !== 204 && status !== 205 && status !== 304;
}

/**
 * The header block for an entry, or false when the general path must
 * answer it. The framework corrects a Content-Length that is not the
 * body's, so only entries it would send unchanged are answered here (a
 * missing or odd Content-Type it leaves as stored: server.ts).
 */
export function headerBlockFor(entry: Entry, cacheName: string): HeaderBlock | false {
  const body = entry.body;
  if (!Buffer.isBuffer(body) || !plainStatus(entry.status)) return false;
  // Node's parser drops a request field named __proto__, which the flow puts back (server.ts): the variant must be chosen there.
  if (entry.vary.includes('__proto__')) return false;
  const headers = entry.headers;
  if (headers['content-length'] !== String(body.length)) return false;
  const fields: (string | string[])[] = [];
  for (const name in headers) {
    // Age and Cache-Status are this response's own (deliver.ts); stored entries never carry them, but be sure.
    if (name === 'age' || name === 'cache-status') continue;
    fields.push(name, headers[name]!);
  }
  fields.push('age', '', 'cache-status', '');
  return { fields, hitStatus: `${cacheName}; hit; ttl=` };
}

export function createFastHit(options: FastHitOptions): FastHit {
  const { store, clock } = options;
  const keyOptions = options.config.key;
  // A key naming __proto__ reads a request field Node's parser drops (server.ts puts it back): every key is the flow's to compute.
  if (keyOptions.headers.includes('__proto__')) return () => false;
  const cacheName = options.config.cache.name;
  const strip = strippedFields(options.config.request.stripHeaders, keyOptions.headers);
  // A field the origin would not see makes the flow key the request without it: the flow's to answer.
  const refused = new Set([...GENERAL_FIELDS, ...fieldsOriginDoesNotSee(strip)]);
  /** Built on an entry's first fast hit, so entries never hit cost nothing; dropped with the entry. */
  const blocks = new WeakMap<Entry, HeaderBlock | false>();

  return function fastHit(req, res) {
    const method = req.method;
    const headers = req.headers;
    if (!plainRequest(method, headers, refused)) return false;
    // A Host the flow refuses, or a Connection header naming fields the origin will then not see, are the flow's to answer.
    if (headers.host !== undefined && !isHostField(headers.host)) return false;
    if (connectionNamesOthers(headers as HeaderMap)) return false;
    const url = req.url ?? '/';
    const observed = requestChannel.hasSubscribers;
    const started = observed ? performance.now() : 0;
    const key = requestTarget(url, headers as HeaderMap, keyOptions).key;
    const variants = store.get(key);
    // A tier that answers with a promise (not the memory tier) is left to the flow.
    if (variants === undefined || !Array.isArray(variants)) return false;
    const now = clock();
    const decision = decideLookup(variants as readonly Entry[], { headers: headers as HeaderMap, directives: EMPTY_DIRECTIVES, hasAuthorization: false }, now);
    if (decision.kind !== 'hit' || decision.stale) return false;
    const entry = decision.entry;
    let block = blocks.get(entry);
    if (block === undefined) {
      block = headerBlockFor(entry, cacheName);
      blocks.set(entry, block);
    }
    if (block === false) return false;

    // RFC 9111 §5.1: the Age of this response; RFC 9211 §2: the hit and its remaining freshness.
    const age = String(ageSeconds(entry.initialAge, entry.responseTime, now));
    const cacheStatus = block.hitStatus + remainingTtl(entry, now);
    const fields = block.fields;
    fields[fields.length - AGE_FROM_END] = age;
    fields[fields.length - CACHE_STATUS_FROM_END] = cacheStatus;
    const body = method === 'HEAD' ? null : (entry.body as Buffer);

    // As in server.ts, the duration runs until the answer is ready to send; the event goes out once it was sent, so a failed write cannot report it twice.
    const durationMs = observed ? performance.now() - started : 0;
    res.writeHead(entry.status, fields);
    // writeHead has copied the fields out. Left in the block, this answer's two strings would live as long as the entry:
    // short-lived strings held by a long-lived array are promoted by the garbage collector, which at hits over many keys
    // (a block per entry) made old-generation collections a large share of the time.
    fields[fields.length - AGE_FROM_END] = '';
    fields[fields.length - CACHE_STATUS_FROM_END] = '';
    if (body === null) res.end();
    else res.end(body);
    if (observed) publish(req, url, new FastDelivery(entry.status, block.fields, age, cacheStatus, body), durationMs);
    return true;
  };
}

/**
 * A fast hit as the request event describes it. Its header map is built
 * only if a subscriber reads it (the metrics read none on a hit), from the
 * block's fields and this answer's own Age and Cache-Status, so it stays
 * right after the block is reused for the next answer.
 */
class FastDelivery implements Delivery {
  readonly outcome = 'hit';
  readonly #fields: readonly (string | string[])[];
  readonly #age: string;
  readonly #cacheStatus: string;
  #headers: HeaderMap | undefined;

  constructor(
    readonly status: number,
    fields: readonly (string | string[])[],
    age: string,
    cacheStatus: string,
    readonly body: Buffer | null,
  ) {
    this.#fields = fields;
    this.#age = age;
    this.#cacheStatus = cacheStatus;
  }

  get headers(): HeaderMap {
    if (this.#headers !== undefined) return this.#headers;
    const headers: HeaderMap = {};
    const fields = this.#fields;
    for (let i = 0; i < fields.length - AGE_FROM_END - 1; i += 2) setField(headers, fields[i] as string, fields[i + 1]);
    headers['age'] = this.#age;
    headers['cache-status'] = this.#cacheStatus;
    this.#headers = headers;
    return headers;
  }
}

/** The request event the general path publishes (server.ts), for metrics and the access log. */
function publish(req: IncomingMessage, url: string, delivery: FastDelivery, durationMs: number): void {
  const method = req.method!;
  const request: ProxyRequest = { method, url, headers: req.headers as HeaderMap, body: null, clientIp: req.socket.remoteAddress ?? '', protocol: 'http' };
  const event: RequestEvent = { method, url, status: delivery.status, outcome: 'hit', durationMs, request, delivery };
  requestChannel.publish(event);
}
