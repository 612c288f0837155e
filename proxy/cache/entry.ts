import type { StoredHeaders } from '../http/headers.js';
import type { Body } from './body.js';

/**
 * A stored response: one variant of one key. Times are absolute epoch
 * milliseconds computed once at store time; stores look only at `deleteAt`,
 * and every freshness question is answered from these fields by
 * proxy/cache/decide.ts.
 */
export interface Entry {
  /** The primary key (host + path + normalized query, see key.ts). */
  readonly key: string;
  /** Lower-cased request header names the response varies on (its Vary). */
  readonly vary: readonly string[];
  /** The normalized request values of `vary`, joined; '' when vary is empty. */
  readonly variant: string;

  readonly status: number;
  /** Response headers as delivered on a hit, without Age and Cache-Status. */
  readonly headers: StoredHeaders;
  /** Bytes in memory, or a file owned by the disk tier (body.ts). */
  readonly body: Body;
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  readonly tags: readonly string[];

  /** When the request that produced this response was sent, and when its headers arrived. */
  readonly requestTime: number;
  readonly responseTime: number;
  /** corrected_initial_age (RFC 9111 §4.2.3), ms. */
  readonly initialAge: number;
  readonly storedAt: number;
  readonly freshUntil: number;
  readonly staleWhileRevalidateUntil: number;
  readonly staleIfErrorUntil: number;
  readonly deleteAt: number;

  /** `no-cache` (unqualified): every reuse needs a successful revalidation (RFC 9111 §5.2.2.4). */
  readonly noCache: boolean;
  /** `must-revalidate`, `proxy-revalidate`, `s-maxage` or `no-cache`: never served stale (RFC 9111 §4.2.4, §5.2.2.2). */
  readonly mustRevalidate: boolean;
  /** `immutable` (RFC 8246): a client's request to revalidate a fresh entry need not reach the origin. */
  readonly immutable: boolean;
  /** May be served to a request carrying Authorization (RFC 9111 §3.5). */
  readonly sharedWithAuthorization: boolean;
  /** Bytes charged to the store for this entry (body + headers + a fixed overhead). */
  readonly size: number;
}

/** Rough per-entry bookkeeping cost beyond body and headers, so tiny entries are not free. */
export const ENTRY_OVERHEAD_BYTES = 512;

export function headersSize(headers: StoredHeaders): number {
  let size = 0;
  for (const name in headers) {
    const value = headers[name]!;
    if (Array.isArray(value)) for (const v of value) size += name.length + v.length + 4;
    else size += name.length + value.length + 4;
  }
  return size;
}

export function hasValidators(entry: Pick<Entry, 'etag' | 'lastModified'>): boolean {
  return entry.etag !== undefined || entry.lastModified !== undefined;
}

/**
 * The same entry with another body (an owned copy, a file, bytes read back
 * from disk): packed (see PackedEntry) when its times allow, as they do
 * unless they lie decades apart.
 */
export function withBody(entry: Omit<Entry, 'body'>, body: Body): Entry {
  return packable(entry) ? new PackedEntry(entry, body) : plainEntry(entry, body);
}

/** The same entry with some fields changed (a soft purge's shortened bands, a test's). */
export function entryWith(entry: Entry, changes: Partial<Entry>): Entry {
  return withBody({ ...entryFields(entry), ...changes }, changes.body ?? entry.body);
}

/**
 * Every field of an entry as plain data, e.g. for JSON: a packed entry's
 * times and flags are read through accessors, which neither spreads nor
 * JSON.stringify see.
 */
export function entryFields(entry: Entry): Entry {
  return plainEntry(entry, entry.body);
}

/** Every field written out in one order, so all plain entries share one object shape too. */
function plainEntry(entry: Omit<Entry, 'body'>, body: Body): Entry {
  return {
    key: entry.key,
    vary: entry.vary,
    variant: entry.variant,
    status: entry.status,
    headers: entry.headers,
    body,
    etag: entry.etag,
    lastModified: entry.lastModified,
    tags: entry.tags,
    requestTime: entry.requestTime,
    responseTime: entry.responseTime,
    initialAge: entry.initialAge,
    storedAt: entry.storedAt,
    freshUntil: entry.freshUntil,
    staleWhileRevalidateUntil: entry.staleWhileRevalidateUntil,
    staleIfErrorUntil: entry.staleIfErrorUntil,
    deleteAt: entry.deleteAt,
    noCache: entry.noCache,
    mustRevalidate: entry.mustRevalidate,
    immutable: entry.immutable,
    sharedWithAuthorization: entry.sharedWithAuthorization,
    size: entry.size,
  };
}

/** The metadata of an entry without its body, as plain data (what the disk and Redis tiers write). */
export function entryMeta(entry: Entry): Omit<Entry, 'body'> {
  const { body: _body, ...meta } = entryFields(entry);
  return meta;
}

/**
 * Offsets under 2^30 ms (12.4 days) are kept to the millisecond. Beyond, to
 * the second, rounded toward the past (a deadline that far out may come up
 * to a second early, never late), up to about 34 years either way. Every
 * packed value is an integer within ±2^31, which V8 keeps in the field
 * itself (a small integer) rather than in a separately allocated number.
 */
const EXACT_OFFSET = 2 ** 30;
/** The furthest offset packed, to the second: about 34 years. */
const MAX_PACKED_MS = (EXACT_OFFSET - 1) * 1000;

/** Whether an offset has a packed form (packOffset); anything further or not finite leaves the entry a plain object. */
export function fitsPacked(ms: number): boolean {
  return Number.isFinite(ms) && ms > -MAX_PACKED_MS && ms < MAX_PACKED_MS;
}

/** The packed form of an offset that fitsPacked. */
export function packOffset(ms: number): number {
  if (ms > -EXACT_OFFSET && ms < EXACT_OFFSET) return Math.floor(ms);
  const seconds = Math.floor(ms / 1000);
  return seconds > 0 ? EXACT_OFFSET + seconds : -EXACT_OFFSET + seconds;
}

export function unpackOffset(packed: number): number {
  if (packed > -EXACT_OFFSET && packed < EXACT_OFFSET) return packed;
  return (packed > 0 ? packed - EXACT_OFFSET : packed + EXACT_OFFSET) * 1000;
}

function packable(entry: Omit<Entry, 'body'>): boolean {
  const base = entry.responseTime;
  return (
    Number.isFinite(base) &&
    fitsPacked(entry.initialAge) &&
    fitsPacked(entry.requestTime - base) &&
    fitsPacked(entry.storedAt - base) &&
    fitsPacked(entry.freshUntil - base) &&
    fitsPacked(entry.staleWhileRevalidateUntil - base) &&
    fitsPacked(entry.staleIfErrorUntil - base) &&
    fitsPacked(entry.deleteAt - base)
  );
}

const NO_CACHE = 1;
const MUST_REVALIDATE = 2;
const IMMUTABLE = 4;
const SHARED_WITH_AUTHORIZATION = 8;

/**
 * An entry as the stores keep it, by the hundred thousand. Epoch
 * milliseconds do not fit V8's small integers, so each time field of a
 * plain object holds a pointer to a number allocated on its own: 24 bytes
 * a time, seven times an entry. Here the response time is the one such
 * number, the other times are offsets from it that do fit (packOffset),
 * and the four flags share one field: 192 bytes an entry instead of 312.
 * Every field is written in one order, so all entries share one shape.
 */
class PackedEntry implements Entry {
  readonly key: string;
  readonly vary: readonly string[];
  readonly variant: string;
  readonly status: number;
  readonly headers: StoredHeaders;
  readonly body: Body;
  readonly etag: string | undefined;
  readonly lastModified: string | undefined;
  readonly tags: readonly string[];
  readonly responseTime: number;
  readonly size: number;
  /** The flag bits above. */
  readonly flags: number;
  /** Packed offsets (packOffset): initialAge itself, the other times from responseTime. */
  readonly initialAgeOffset: number;
  readonly requestOffset: number;
  readonly storedOffset: number;
  readonly freshOffset: number;
  readonly staleWhileRevalidateOffset: number;
  readonly staleIfErrorOffset: number;
  readonly deleteOffset: number;

  constructor(entry: Omit<Entry, 'body'>, body: Body) {
    const base = entry.responseTime;
    this.key = entry.key;
    this.vary = entry.vary;
    this.variant = entry.variant;
    this.status = entry.status;
    this.headers = entry.headers;
    this.body = body;
    this.etag = entry.etag;
    this.lastModified = entry.lastModified;
    this.tags = entry.tags;
    this.responseTime = base;
    this.size = entry.size;
    this.flags =
      (entry.noCache ? NO_CACHE : 0) |
      (entry.mustRevalidate ? MUST_REVALIDATE : 0) |
      (entry.immutable ? IMMUTABLE : 0) |
      (entry.sharedWithAuthorization ? SHARED_WITH_AUTHORIZATION : 0);
    this.initialAgeOffset = packOffset(entry.initialAge);
    this.requestOffset = packOffset(entry.requestTime - base);
    this.storedOffset = packOffset(entry.storedAt - base);
    this.freshOffset = packOffset(entry.freshUntil - base);
    this.staleWhileRevalidateOffset = packOffset(entry.staleWhileRevalidateUntil - base);
    this.staleIfErrorOffset = packOffset(entry.staleIfErrorUntil - base);
    this.deleteOffset = packOffset(entry.deleteAt - base);
  }

  get initialAge(): number {
    return unpackOffset(this.initialAgeOffset);
  }
  get requestTime(): number {
    return this.responseTime + unpackOffset(this.requestOffset);
  }
  get storedAt(): number {
    return this.responseTime + unpackOffset(this.storedOffset);
  }
  get freshUntil(): number {
    return this.responseTime + unpackOffset(this.freshOffset);
  }
  get staleWhileRevalidateUntil(): number {
    return this.responseTime + unpackOffset(this.staleWhileRevalidateOffset);
  }
  get staleIfErrorUntil(): number {
    return this.responseTime + unpackOffset(this.staleIfErrorOffset);
  }
  get deleteAt(): number {
    return this.responseTime + unpackOffset(this.deleteOffset);
  }
  get noCache(): boolean {
    return (this.flags & NO_CACHE) !== 0;
  }
  get mustRevalidate(): boolean {
    return (this.flags & MUST_REVALIDATE) !== 0;
  }
  get immutable(): boolean {
    return (this.flags & IMMUTABLE) !== 0;
  }
  get sharedWithAuthorization(): boolean {
    return (this.flags & SHARED_WITH_AUTHORIZATION) !== 0;
  }
}
