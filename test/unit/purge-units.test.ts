import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { createAuthorizer, bearerToken } from '../../purge/auth.js';
import { parsePurgeBody } from '../../purge/body.js';
import { allowedLikePurge } from '../../purge/http.js';
import { keyMatcher, parseTarget } from '../../purge/selectors.js';
import { softPurged } from '../../purge/soft.js';
import { Invalidations } from '../../proxy/cache/coalesce.js';
import { decideLookup, mayServeOnError } from '../../proxy/cache/decide.js';
import { testEntry } from '../helpers/entries.js';

const NOW = 1_000_000_000_000;
const lookup = (entry: ReturnType<typeof testEntry>, now: number) => decideLookup([entry], { headers: {}, directives: new Map(), hasAuthorization: false }, now);

describe('a soft-purged entry', () => {
  // Stored at NOW: fresh for 60 s, then 30 s of stale-while-revalidate, 300 s of stale-if-error, kept 3600 s for revalidation.
  const entry = testEntry(
    { key: 'h/a', freshUntil: NOW + 60_000, staleWhileRevalidateUntil: NOW + 90_000, staleIfErrorUntil: NOW + 360_000, deleteAt: NOW + 3_660_000, etag: '"v1"' },
    NOW,
  );

  it('is stale from the moment of the purge and keeps the lengths of its grace bands from then', () => {
    const purgedAt = NOW + 10_000;
    const soft = softPurged(entry, purgedAt);
    expect(soft.freshUntil).toBe(purgedAt);
    expect(soft.staleWhileRevalidateUntil).toBe(purgedAt + 30_000);
    expect(soft.staleIfErrorUntil).toBe(purgedAt + 300_000);
    expect(soft.deleteAt).toBe(purgedAt + 3_600_000);
    expect(soft.body).toBe(entry.body);
    expect(soft.tags).toBe(entry.tags);
  });

  it('is served stale while one refresh runs, and stands in for a failing origin', () => {
    const soft = softPurged(entry, NOW + 10_000);
    expect(lookup(entry, NOW + 10_000).kind).toBe('hit');
    expect(lookup(soft, NOW + 10_000).kind).toBe('stale-while-revalidate');
    expect(lookup(soft, NOW + 45_000).kind).toBe('revalidate');
    expect(mayServeOnError(soft, NOW + 300_000)).toBe(true);
  });

  it('never lives longer than the entry it came from', () => {
    for (const at of [NOW, NOW + 1, NOW + 59_999]) {
      const soft = softPurged(entry, at);
      expect(soft.staleWhileRevalidateUntil).toBeLessThanOrEqual(entry.staleWhileRevalidateUntil);
      expect(soft.staleIfErrorUntil).toBeLessThanOrEqual(entry.staleIfErrorUntil);
      expect(soft.deleteAt).toBeLessThanOrEqual(entry.deleteAt);
    }
  });

  it('is the entry itself when it is already stale', () => {
    expect(softPurged(entry, NOW + 60_000)).toBe(entry);
  });

  it('without grace or validators is gone at once, like a hard purge', () => {
    const bare = testEntry({ key: 'h/b' }, NOW);
    expect(softPurged(bare, NOW + 5_000).deleteAt).toBe(NOW + 5_000);
    expect(lookup(softPurged(bare, NOW + 5_000), NOW + 5_000)).toEqual({ kind: 'miss', reason: 'vary-miss' });
  });
});

describe('purge authorization', () => {
  const withToken = createAuthorizer({ token: 'correct-horse-battery-staple', allow: ['10.1.0.0/16', '2001:db8::7'] });
  const withoutToken = createAuthorizer({ token: null, allow: ['192.0.2.10'] });

  it('with a token configured: the right token passes, a missing one is 401, a wrong one 403, even from loopback', () => {
    expect(withToken.authorize({ authorization: 'Bearer correct-horse-battery-staple', clientIp: '203.0.113.9' })).toEqual({ kind: 'allowed', by: 'token' });
    expect(withToken.authorize({ authorization: 'bearer  correct-horse-battery-staple', clientIp: '203.0.113.9' }).kind).toBe('allowed');
    expect(withToken.authorize({ authorization: undefined, clientIp: '127.0.0.1' })).toMatchObject({ kind: 'denied', status: 401 });
    expect(withToken.authorize({ authorization: 'Basic dXNlcjpwYXNz', clientIp: '127.0.0.1' })).toMatchObject({ kind: 'denied', status: 401 });
    expect(withToken.authorize({ authorization: 'Bearer correct-horse-battery-stapl', clientIp: '127.0.0.1' })).toMatchObject({ kind: 'denied', status: 403 });
    expect(withToken.authorize({ authorization: 'Bearer correct-horse-battery-staple-and-more', clientIp: '::1' })).toMatchObject({ kind: 'denied', status: 403 });
  });

  it('lets configured addresses and ranges purge without the token, IPv4-mapped addresses included', () => {
    expect(withToken.authorize({ authorization: undefined, clientIp: '10.1.200.3' })).toEqual({ kind: 'allowed', by: 'address' });
    expect(withToken.authorize({ authorization: undefined, clientIp: '::ffff:10.1.0.1' })).toEqual({ kind: 'allowed', by: 'address' });
    expect(withToken.authorize({ authorization: undefined, clientIp: '2001:db8::7' })).toEqual({ kind: 'allowed', by: 'address' });
    expect(withToken.authorize({ authorization: undefined, clientIp: '10.2.0.1' })).toMatchObject({ kind: 'denied', status: 401 });
  });

  it('without a token configured: loopback and configured addresses only', () => {
    for (const ip of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) expect(withoutToken.authorize({ authorization: undefined, clientIp: ip }).kind, ip).toBe('allowed');
    expect(withoutToken.authorize({ authorization: undefined, clientIp: '192.0.2.10' })).toEqual({ kind: 'allowed', by: 'address' });
    for (const ip of ['192.0.2.11', '10.0.0.1', '::ffff:10.0.0.1', '2001:db8::1', '']) {
      expect(withoutToken.authorize({ authorization: 'Bearer anything-at-all-here', clientIp: ip }), ip).toMatchObject({ kind: 'denied', status: 403 });
    }
  });

  it('reads only well-formed bearer credentials', () => {
    expect(bearerToken('Bearer abc')).toBe('abc');
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken('Bearer a b')).toBeUndefined();
    expect(bearerToken('Token abc')).toBeUndefined();
  });
});

describe('the POST /purge body', () => {
  const message = (raw: string | undefined) => {
    const verdict = parsePurgeBody(raw);
    return verdict.kind === 'invalid' ? verdict.message : 'valid';
  };

  it('accepts any of urls, tags, prefixes and all, hard unless soft is true', () => {
    expect(parsePurgeBody('{"tags":["a","b"],"urls":["/x"],"soft":true}')).toEqual({
      kind: 'spec',
      spec: { urls: ['/x'], tags: ['a', 'b'], prefixes: [], all: false, mode: 'soft' },
    });
    expect(parsePurgeBody('{"all":true}')).toMatchObject({ kind: 'spec', spec: { all: true, mode: 'hard' } });
  });

  it('rejects bad JSON, unknown fields, empty lists and bodies that purge nothing, saying why', () => {
    expect(message(undefined)).toMatch(/expected a JSON body/);
    expect(message('{"tags": [')).toMatch(/not valid JSON/);
    expect(message('[]')).toMatch(/expected a JSON object/);
    expect(message('{"tag":["a"]}')).toMatch(/unknown field "tag" \(expected urls, tags, prefixes, all, soft\)/);
    expect(message('{"tags":[]}')).toMatch(/^tags: expected at least one of tags/);
    expect(message('{"tags":["a b"]}')).toMatch(/^tags\[0\]: a tag has no spaces or commas/);
    expect(message('{"urls":[42]}')).toMatch(/^urls\[0\]: expected URL as a string/);
    expect(message('{"all":false}')).toMatch(/nothing to purge/);
    expect(message('{"soft":true}')).toMatch(/nothing to purge/);
    expect(message('{"all":"yes"}')).toMatch(/^all: expected true or false/);
  });
});

describe('purge targets', () => {
  const keyOptions = defaults().key;

  it('names a path on every host, an absolute URL on its own host, with the query normalized as keys are', () => {
    expect(parseTarget('/a?b=2&a=1', keyOptions)).toEqual({ host: undefined, path: '/a?a=1&b=2' });
    expect(parseTarget('HTTP://Example.COM:80/a#frag', keyOptions)).toEqual({ host: 'example.com', path: '/a' });
    expect(parseTarget('https://example.com:443', keyOptions)).toEqual({ host: 'example.com', path: '/' });
    expect(parseTarget('/a', keyOptions, 'Shop.Test')).toEqual({ host: 'shop.test', path: '/a' });
    expect(parseTarget('example.com/a', keyOptions)).toMatch(/expected an absolute http\(s\) URL/);
    expect(parseTarget('ftp://example.com/a', keyOptions)).toMatch(/expected an absolute http\(s\) URL/);
  });

  it('matches keys by host and path, ignoring key headers', () => {
    const matches = keyMatcher([parseTarget('/a', keyOptions) as never, parseTarget('http://one.test/b', keyOptions) as never], [parseTarget('http://two.test/api/', keyOptions) as never]);
    expect(['one.test/a', 'two.test/a\nx-tenant:1', 'one.test/b', 'two.test/api/1', 'two.test/api/'].every(matches)).toBe(true);
    expect(['one.test/ab', 'two.test/b', 'one.test/api/1', 'two.test/apis'].some(matches)).toBe(false);
  });
});

describe('invalidation stamps', () => {
  it('refuse a response fetched before a purge of its key, one of its tags, a prefix it falls under, or everything', () => {
    const stamps = new Invalidations();
    const before = stamps.stamp();
    stamps.invalidateTag('t');
    stamps.invalidateMatching((key) => key.startsWith('h/api/'));
    expect(stamps.mayStore('h/x', before, ['t'])).toBe(false);
    expect(stamps.mayStore('h/api/1', before, [])).toBe(false);
    expect(stamps.mayStore('h/x', before, ['u'])).toBe(true);
    const after = stamps.stamp();
    expect(stamps.mayStore('h/x', after, ['t'])).toBe(true);
    expect(stamps.mayStore('h/api/1', after, [])).toBe(true);
    stamps.invalidateAll();
    expect(stamps.mayStore('h/other', after, [])).toBe(false);
  });

  it('treat anything older than a forgotten stamp as invalidated, so bounding them never lets an old response through', () => {
    const stamps = new Invalidations(2, 2);
    const before = stamps.stamp();
    stamps.invalidateTag('a');
    stamps.invalidateTag('b');
    stamps.invalidateTag('c');
    expect(stamps.mayStore('h/x', before, ['a'])).toBe(false);
    const middle = stamps.stamp();
    for (const prefix of ['h/1', 'h/2', 'h/3']) stamps.invalidateMatching((key) => key.startsWith(prefix));
    expect(stamps.mayStore('h/1', middle, [])).toBe(false);
    expect(stamps.mayStore('h/9', stamps.stamp(), [])).toBe(true);
  });
});

describe('the purge check for other admin routes', () => {
  it('answers yes or no on a Fastify request the way purge would', async () => {
    const app = Fastify();
    const allows = allowedLikePurge(createAuthorizer({ token: 'explain-token-0123456789', allow: [] }));
    app.get('/guarded', async (request) => ({ allowed: allows(request) }));
    try {
      // inject() connects from 127.0.0.1: loopback alone is not enough once a token is configured.
      expect((await app.inject({ url: '/guarded' })).json()).toEqual({ allowed: false });
      expect((await app.inject({ url: '/guarded', headers: { authorization: 'Bearer explain-token-0123456789' } })).json()).toEqual({ allowed: true });
    } finally {
      await app.close();
    }
  });
});
