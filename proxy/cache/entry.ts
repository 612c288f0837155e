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
 * from disk). Every field is written out in one order, so all entries share
 * one object shape: built with spreads and rests, V8 gave entries indexed by
 * the disk tier a hidden class (map and descriptors) of their own, several
 * hundred bytes each.
 */
export function withBody(entry: Omit<Entry, 'body'>, body: Body): Entry {
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
