import { describe, expect, it } from 'vitest';
import { freshenedHeaders, notModifiedMatches } from '../../proxy/cache/conditional.js';

describe('freshening a stored response from a 304 (RFC 9111 §4.3.4, §3.2)', () => {
  it('takes the 304\'s fields, except those describing the stored body', () => {
    const merged = freshenedHeaders(
      { 'cache-control': 'max-age=1', 'content-length': '5', 'x-a': 'old', etag: '"abc"' },
      { 'cache-control': 'max-age=3600', 'content-length': '10', 'x-a': 'new', 'x-b': 'added' },
    );
    expect(merged).toEqual({ 'cache-control': 'max-age=3600', 'content-length': '5', 'x-a': 'new', 'x-b': 'added', etag: '"abc"' });
  });

  it('keeps the stored ETag when the 304 names another, since the stored body is the one our tag named', () => {
    expect(freshenedHeaders({ etag: '"abcdef"' }, { etag: '"ghijkl"' })['etag']).toBe('"abcdef"');
  });

  it('adopts nothing but the 304\'s ETag-free fields for an entry that had no ETag', () => {
    expect(freshenedHeaders({ 'last-modified': 'Wed, 01 Jan 2020 00:00:00 GMT' }, { expires: 'x' })).toEqual({ 'last-modified': 'Wed, 01 Jan 2020 00:00:00 GMT', expires: 'x' });
  });

  it('takes a 304 to our If-None-Match as selecting our entry, whatever tag it carries (RFC 9110 §13.1.2)', () => {
    expect(notModifiedMatches({ etag: '"ghijkl"' }, { etag: '"abcdef"', lastModified: undefined })).toBe(true);
    expect(notModifiedMatches({}, { etag: '"abcdef"', lastModified: undefined })).toBe(true);
  });

  it('does not freshen an entry validated by date alone from a 304 naming an ETag', () => {
    const lastModified = 'Wed, 01 Jan 2020 00:00:00 GMT';
    expect(notModifiedMatches({ etag: '"x"' }, { etag: undefined, lastModified })).toBe(false);
    expect(notModifiedMatches({}, { etag: undefined, lastModified })).toBe(true);
  });
});
