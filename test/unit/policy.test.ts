import { describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { parseCacheControl } from '../../proxy/cache/cache-control.js';
import { correctedInitialAge, freshnessLifetime, jittered, type ResponseFacts } from '../../proxy/cache/freshness.js';
import { judgeResponse, makeEntry, type PolicyOptions } from '../../proxy/cache/policy.js';
import type { HeaderMap } from '../../proxy/http/headers.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const config = defaults();
const options: PolicyOptions = { cache: config.cache, tags: config.tags, keepWithValidators: 0, random: () => 0.5 };

function judge(headers: HeaderMap, extra: { status?: number; method?: string; requestHeaders?: HeaderMap; policy?: Partial<PolicyOptions> } = {}) {
  return judgeResponse(
    {
      requestMethod: extra.method ?? 'GET',
      requestHeaders: extra.requestHeaders ?? {},
      status: extra.status ?? 200,
      headers: { date: new Date(NOW).toUTCString(), ...headers },
      requestTime: NOW,
      responseTime: NOW,
    },
    { ...options, ...extra.policy },
  );
}

function facts(headers: Record<string, string>, status = 200): ResponseFacts {
  return {
    status,
    directives: parseCacheControl(headers['cache-control']),
    date: headers['date'],
    expires: headers['expires'],
    lastModified: headers['last-modified'],
    age: headers['age'],
  };
}

const lifetimeOptions = { heuristicFraction: 0.1, heuristicMaxTtl: 86_400_000, defaultTtl: 0, negativeTtl: 0, jitter: 0.1 };

describe('storage decisions for a shared cache (RFC 9111 §3)', () => {
  it.each([
    [{ 'cache-control': 'no-store, max-age=60' }, 'no-store'],
    [{ 'cache-control': 'private, max-age=60' }, 'private'],
    [{ 'cache-control': 'max-age=60', vary: 'accept, *' }, 'vary-star'],
    [{ 'cache-control': 'max-age=60', 'set-cookie': 'a=1' }, 'set-cookie'],
    [{}, 'no-lifetime'],
  ])('refuses %o (%s)', (headers, reason) => {
    expect(judge(headers)).toEqual({ store: false, reason });
  });

  it('stores only GET, even a POST response with explicit freshness', () => {
    expect(judge({ 'cache-control': 'max-age=60' }, { method: 'POST' })).toEqual({ store: false, reason: 'method' });
  });

  it('never stores a partial (206) response', () => {
    expect(judge({ 'cache-control': 'max-age=60', 'content-range': 'bytes 0-1/10' }, { status: 206 })).toEqual({ store: false, reason: 'status' });
  });

  it('does not store 302 without explicit freshness, but does with it', () => {
    expect(judge({ etag: '"x"' }, { status: 302 })).toEqual({ store: false, reason: 'status' });
    expect(judge({ 'cache-control': 'max-age=60' }, { status: 302 }).store).toBe(true);
  });

  it('stores a response to an authenticated request only with public, s-maxage or must-revalidate (RFC 9111 §3.5)', () => {
    const requestHeaders = { authorization: 'Bearer x' };
    expect(judge({ 'cache-control': 'max-age=60' }, { requestHeaders })).toEqual({ store: false, reason: 'authorization' });
    for (const cc of ['public, max-age=60', 's-maxage=60', 'max-age=60, must-revalidate']) {
      expect(judge({ 'cache-control': cc }, { requestHeaders }).store).toBe(true);
    }
  });

  it('lets must-understand override no-store for a status it understands, and refuses one it does not', () => {
    expect(judge({ 'cache-control': 'must-understand, no-store, max-age=60' }).store).toBe(true);
    expect(judge({ 'cache-control': 'must-understand, no-store, max-age=60' }, { status: 299 }).store).toBe(false);
  });

  it('strips the fields a qualified no-cache or private names, and keeps the rest of the response', () => {
    const verdict = judge({ 'cache-control': 'max-age=60, no-cache="set-cookie, x-secret", private="x-user"', 'set-cookie': 'a=1', 'x-secret': 's', 'x-user': 'u', 'x-kept': 'k' });
    expect(verdict.store).toBe(true);
    if (!verdict.store) return;
    expect(verdict.plan.headers['set-cookie']).toBeUndefined();
    expect(verdict.plan.headers['x-secret']).toBeUndefined();
    expect(verdict.plan.headers['x-user']).toBeUndefined();
    expect(verdict.plan.headers['x-kept']).toBe('k');
    expect(verdict.plan.noCache).toBe(false);
  });

  it('stores Set-Cookie responses without the cookie when setCookie is "strip"', () => {
    const verdict = judge({ 'cache-control': 'max-age=60', 'set-cookie': 'a=1' }, { policy: { cache: { ...config.cache, setCookie: 'strip' } } });
    expect(verdict.store && verdict.plan.headers['set-cookie']).toBeUndefined();
    expect(verdict.store).toBe(true);
  });

  it('prefers CDN-Cache-Control over Cache-Control (RFC 9213)', () => {
    const verdict = judge({ 'cache-control': 'no-store', 'cdn-cache-control': 'max-age=300' });
    expect(verdict.store && verdict.plan.lifetime).toEqual({ ms: 300_000, source: 'max-age' });
  });

  it('lets s-maxage forbid stale use unless the origin names a stale window itself', () => {
    const plain = judge({ 'cache-control': 's-maxage=60' });
    const withSwr = judge({ 'cache-control': 's-maxage=60, stale-while-revalidate=30' });
    expect(plain.store && plain.plan.mustRevalidate).toBe(true);
    expect(withSwr.store && withSwr.plan.staleWhileRevalidate).toBe(30_000);
  });

  it('computes every absolute time of an entry once, at store time', () => {
    const verdict = judge({ 'cache-control': 'max-age=60, stale-while-revalidate=30, stale-if-error=300', etag: '"e"', age: '10' });
    if (!verdict.store) throw new Error('expected storable');
    const entry = makeEntry(verdict.plan, 'k', '', Buffer.from('body'), NOW, 3_600_000);
    expect(entry.freshUntil).toBe(NOW + 50_000);
    expect(entry.staleWhileRevalidateUntil).toBe(NOW + 80_000);
    expect(entry.staleIfErrorUntil).toBe(NOW + 350_000);
    expect(entry.deleteAt).toBe(NOW + 350_000 + 3_600_000);
  });
});

describe('tags', () => {
  const tagList = (count: number) => Array.from({ length: count }, (_, i) => `tag-${i}`).join(' ');
  function stored(headers: HeaderMap) {
    const verdict = judge({ 'cache-control': 'max-age=60', ...headers });
    if (!verdict.store) throw new Error('expected storable');
    return makeEntry(verdict.plan, 'k', '', Buffer.from('body'), NOW, 0);
  }

  it('counts an entry’s tags in its size, though the tag headers are not stored', () => {
    const plain = stored({});
    const tagged = stored({ 'surrogate-key': tagList(100) });
    expect(tagged.headers['surrogate-key']).toBeUndefined();
    expect(tagged.size - plain.size).toBeGreaterThanOrEqual(100 * (64 + 2 * 'tag-0'.length));
  });

  it('keeps the first tags.maxPerEntry tags and ignores the rest', () => {
    expect(stored({ 'surrogate-key': tagList(300) }).tags).toHaveLength(256);
    const few = judge({ 'cache-control': 'max-age=60', 'cache-tag': 'a,b,c', 'surrogate-key': 'd e' }, { policy: { tags: { ...config.tags, maxPerEntry: 4 } } });
    expect(few.store && few.plan.tags).toEqual(['d', 'e', 'a', 'b']);
  });
});

describe('freshness lifetime (RFC 9111 §4.2.1)', () => {
  it('takes s-maxage, then max-age, then Expires', () => {
    const date = new Date(NOW).toUTCString();
    const expires = new Date(NOW + 30_000).toUTCString();
    const lifetime = (h: Record<string, string>) => freshnessLifetime(facts({ date, expires, ...h }), NOW, lifetimeOptions, () => 0.5);
    expect(lifetime({ 'cache-control': 's-maxage=10, max-age=20' })).toEqual({ ms: 10_000, source: 's-maxage' });
    expect(lifetime({ 'cache-control': 'max-age=20' })).toEqual({ ms: 20_000, source: 'max-age' });
    expect(lifetime({})).toEqual({ ms: 30_000, source: 'expires' });
  });

  it('uses a fraction of the Last-Modified age as a heuristic, capped, for heuristically cacheable statuses only', () => {
    const headers = { date: new Date(NOW).toUTCString(), 'last-modified': new Date(NOW - 1_000_000).toUTCString() };
    expect(freshnessLifetime(facts(headers), NOW, { ...lifetimeOptions, jitter: 0 }, () => 0.5)).toEqual({ ms: 100_000, source: 'heuristic' });
    expect(freshnessLifetime(facts(headers), NOW, { ...lifetimeOptions, jitter: 0, heuristicMaxTtl: 5_000 }, () => 0.5).ms).toBe(5_000);
    expect(freshnessLifetime(facts(headers, 302), NOW, lifetimeOptions, () => 0.5)).toEqual({ ms: 0, source: 'none' });
  });

  it('jitters only the lifetimes Lacquer assigns itself, by at most ±jitter', () => {
    expect(jittered(100_000, 0.1, () => 0)).toBe(90_000);
    expect(jittered(100_000, 0.1, () => 0.999999)).toBe(110_000);
    const explicit = freshnessLifetime(facts({ 'cache-control': 'max-age=100' }), NOW, lifetimeOptions, () => 0);
    expect(explicit.ms).toBe(100_000);
    const assigned = freshnessLifetime(facts({}), NOW, { ...lifetimeOptions, defaultTtl: 100_000 }, () => 0);
    expect(assigned).toEqual({ ms: 90_000, source: 'default-ttl' });
  });

  it('corrects the initial age for the Age header, clock skew and the time in flight (§4.2.3)', () => {
    expect(correctedInitialAge(facts({ age: '10', date: new Date(NOW).toUTCString() }), NOW - 2_000, NOW)).toBe(12_000);
    expect(correctedInitialAge(facts({ date: new Date(NOW - 30_000).toUTCString() }), NOW, NOW)).toBe(30_000);
  });
});
