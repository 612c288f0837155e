import { describe, expect, it } from 'vitest';
import { deltaSeconds, parseCacheControl, qualifiedFields } from '../../proxy/cache/cache-control.js';
import { splitList } from '../../proxy/http/headers.js';

describe('Cache-Control parsing (RFC 9111 §5.2)', () => {
  it('keeps a quoted field list as one directive', () => {
    const directives = parseCacheControl('no-cache="set-cookie, x-foo", max-age=60');
    expect(qualifiedFields(directives, 'no-cache')).toEqual(['set-cookie', 'x-foo']);
    expect(deltaSeconds(directives, 'max-age')).toBe(60);
  });

  it('lower-cases directive names and tolerates odd spacing and empty members', () => {
    const directives = parseCacheControl(' Max-Age = 5 ,, PUBLIC ');
    expect(deltaSeconds(directives, 'max-age')).toBe(5);
    expect(directives.get('public')).toBe(true);
  });

  it('treats a non-numeric, negative or missing delta-seconds as invalid (null), and absence as undefined', () => {
    expect(deltaSeconds(parseCacheControl('max-age=abc'), 'max-age')).toBeNull();
    expect(deltaSeconds(parseCacheControl('max-age=-1'), 'max-age')).toBeNull();
    expect(deltaSeconds(parseCacheControl('max-age'), 'max-age')).toBeNull();
    expect(deltaSeconds(parseCacheControl('public'), 'max-age')).toBeUndefined();
  });

  it('accepts a quoted delta-seconds and caps huge values at 2^31', () => {
    expect(deltaSeconds(parseCacheControl('max-age="30"'), 'max-age')).toBe(30);
    expect(deltaSeconds(parseCacheControl('max-age=99999999999999'), 'max-age')).toBe(2 ** 31);
  });

  it('marks conflicting duplicates invalid, but not identical ones (RFC 9111 §4.2.1)', () => {
    expect(deltaSeconds(parseCacheControl('max-age=10, max-age=20'), 'max-age')).toBeNull();
    expect(deltaSeconds(parseCacheControl('max-age=10, max-age=10'), 'max-age')).toBe(10);
  });

  it('splits lists without breaking quoted strings or escaped quotes', () => {
    expect(splitList('a, "b, c", d')).toEqual(['a', '"b, c"', 'd']);
    expect(splitList('x="a\\", b", y')).toEqual(['x="a\\", b"', 'y']);
  });
});
