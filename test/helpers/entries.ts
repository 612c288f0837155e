import type { Entry } from '../../proxy/cache/entry.js';

const EMPTY = Buffer.alloc(0);

/** A stored entry with plain defaults (fresh for a minute from `now`), for tests that fill a store directly. */
export function testEntry(fields: Partial<Entry> & { key: string }, now = Date.now()): Entry {
  return {
    vary: [],
    variant: '',
    status: 200,
    headers: { 'content-type': 'text/plain' },
    body: EMPTY,
    etag: undefined,
    lastModified: undefined,
    tags: [],
    requestTime: now,
    responseTime: now,
    initialAge: 0,
    storedAt: now,
    freshUntil: now + 60_000,
    staleWhileRevalidateUntil: now + 60_000,
    staleIfErrorUntil: now + 60_000,
    deleteAt: now + 60_000,
    noCache: false,
    mustRevalidate: false,
    immutable: false,
    sharedWithAuthorization: false,
    size: 600,
    ...fields,
  };
}
