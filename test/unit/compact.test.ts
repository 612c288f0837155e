import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import type { StoredHeaders } from '../../proxy/http/headers.js';
import { compactHeaders, flat, sharedValue } from '../../proxy/cache/compact.js';
import { entryFields, withBody } from '../../proxy/cache/entry.js';
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

  it('holds the fields of stored headers in the object itself: no second array past the fourth field', () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heapAfterGc = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    // As the flow hands them over: an object that lost a field (a hop-by-hop one) on its way.
    const source: Record<string, string> = { 'content-type': 'text/html', 'content-length': '10240', 'cache-control': 'public, max-age=60', date: 'Tue, 01 Jan 2030 00:00:00 GMT', etag: '"e"', connection: 'close' };
    delete source['connection'];
    const count = 50_000;
    const kept: StoredHeaders[] = new Array<StoredHeaders>(count);
    const before = heapAfterGc();
    for (let i = 0; i < count; i++) kept[i] = compactHeaders(source);
    const perObject = (heapAfterGc() - before) / count;
    expect(kept[count - 1]).toEqual(source);
    // Five fields: a 24-byte object header and 8 bytes a field is 64 bytes; with a second array it was over 100.
    expect(perObject).toBeLessThan(80);
  });

  it('keeps a header named __proto__ as a plain field', () => {
    const headers = JSON.parse('{"__proto__":"x","content-type":"text/plain"}') as StoredHeaders;
    const compact = compactHeaders(headers);
    expect(Object.keys(compact)).toEqual(['__proto__', 'content-type']);
    expect(Object.getPrototypeOf(compact)).toBe(Object.prototype);
  });

  it('keeps answering the right value after the shared table starts over', () => {
    for (let i = 0; i < 10_000; i++) expect(sharedValue(`"etag-${i}"`)).toBe(`"etag-${i}"`);
    expect(sharedValue('"etag-3"')).toBe('"etag-3"');
  });

  it('gives an entry another body with every other field as it was', () => {
    const entry = testEntry({ key: 'k', etag: '"v"', lastModified: 'Tue, 01 Jan 2030 00:00:00 GMT', tags: ['a'], vary: ['accept-encoding'], variant: 'gzip' });
    const body = Buffer.from('other');
    const moved = withBody(entry, body);
    expect(entryFields(moved)).toEqual({ ...entryFields(entry), body });
    // Every entry the stores hold has one shape, whatever it was made from.
    const other = withBody(testEntry({ key: 'other' }), Buffer.from('x'));
    expect(Object.keys(moved)).toEqual(Object.keys(other));
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
