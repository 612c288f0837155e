import { describe, expect, it } from 'vitest';
import { compactHeaders, flat, sharedValue } from '../../proxy/cache/compact.js';
import { withBody } from '../../proxy/cache/entry.js';
import { makeEntry } from '../../proxy/cache/policy.js';
import { testEntry } from '../helpers/entries.js';

describe('store-time compaction of entries', () => {
  it('copies a string flat without changing a code unit, lone surrogates included', () => {
    const built = 'example.test' + '/path?q=' + String(12345) + '\ud800' + 'é';
    expect(flat(built)).toBe(built);
    expect(flat('')).toBe('');
  });

  it('shares header values without changing names, order or repeated fields', () => {
    const headers = { 'content-type': 'text/html', link: ['<a>', '<b>'], 'cache-control': 'public, max-age=60', 'x-long': 'x'.repeat(500) };
    const compact = compactHeaders(headers);
    expect(compact).toEqual(headers);
    expect(Object.keys(compact)).toEqual(Object.keys(headers));
    expect(sharedValue('text/html')).toBe('text/html');
  });

  it('keeps answering the right value after the shared table starts over', () => {
    for (let i = 0; i < 10_000; i++) expect(sharedValue(`"etag-${i}"`)).toBe(`"etag-${i}"`);
    expect(sharedValue('"etag-3"')).toBe('"etag-3"');
  });

  it('gives an entry another body with every other field as it was', () => {
    const entry = testEntry({ key: 'k', etag: '"v"', lastModified: 'Tue, 01 Jan 2030 00:00:00 GMT', tags: ['a'], vary: ['accept-encoding'], variant: 'gzip' });
    const body = Buffer.from('other');
    const moved = withBody(entry, body);
    expect(moved).toEqual({ ...entry, body });
    expect(Object.keys(moved).sort()).toEqual(Object.keys(entry).sort());
  });

  it('makes entries with the same fields as before compaction', () => {
    const plan = {
      status: 200,
      headers: { 'content-type': 'text/plain', etag: '"e"', 'content-length': '2' },
      vary: [],
      lifetime: { ms: 60_000, source: 'max-age' as const },
      initialAge: 0,
      requestTime: 1_000,
      responseTime: 1_000,
      staleWhileRevalidate: 0,
      staleIfError: 0,
      noCache: false,
      mustRevalidate: false,
      immutable: false,
      sharedWithAuthorization: false,
      tags: [],
    };
    const entry = makeEntry(plan, 'example.test' + '/a', '', Buffer.from('ok'), 1_000, 0);
    expect(entry.key).toBe('example.test/a');
    expect(entry.headers).toEqual(plan.headers);
    expect(entry.etag).toBe('"e"');
    expect(entry.vary).toEqual([]);
    expect(entry.tags).toEqual([]);
    expect(entry.freshUntil).toBe(61_000);
  });
});
