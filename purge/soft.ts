import { entryWith, type Entry } from '../proxy/cache/entry.js';

/**
 * A soft purge (Varnish's softpurge): the entry stops being fresh at `now`
 * but keeps its grace. Its stale-while-revalidate, stale-if-error and
 * keep-for-revalidation bands are the same lengths as before, now counted
 * from `now` instead of from the old end of freshness (RFC 5861 windows
 * start when freshness ends). So the next request is served stale while one
 * refresh runs, and an origin that fails is still covered by stale-if-error.
 *
 * Pure: the same entry and `now` always give the same result. An entry that
 * is already stale is returned as it is (nothing to shorten). Every band
 * ends no later than before, so a soft purge never extends a lifetime.
 */
export function softPurged(entry: Entry, now: number): Entry {
  // no-cache entries are never served without revalidation, so they are never fresh to begin with.
  if (entry.freshUntil <= now || entry.noCache) return entry;
  const shift = (until: number): number => now + Math.max(0, until - entry.freshUntil);
  return entryWith(entry, {
    freshUntil: now,
    staleWhileRevalidateUntil: shift(entry.staleWhileRevalidateUntil),
    staleIfErrorUntil: shift(entry.staleIfErrorUntil),
    // With no grace and no validators this is now: the entry is gone at the next lookup, as a hard purge.
    deleteAt: shift(entry.deleteAt),
  });
}
