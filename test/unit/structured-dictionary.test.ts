import { describe, expect, it } from 'vitest';
import { parseTargetedCacheControl } from '../../proxy/cache/cache-control.js';
import { parseDictionary } from '../../proxy/http/structured-dictionary.js';

describe('Dictionary Structured Fields (RFC 8941 §4.2.2)', () => {
  it('reads members with and without values, parameters and inner lists', () => {
    const parsed = parseDictionary('a=1, b, c="x\\"y";p=2, d=?0, e=tok/en, f=(1 "two");q, g=1.5, h=:aGk=:');
    expect(parsed).toEqual(
      new Map<string, unknown>([
        ['a', { type: 'integer', value: 1 }],
        ['b', { type: 'boolean', value: true }],
        ['c', { type: 'string', value: 'x"y' }],
        ['d', { type: 'boolean', value: false }],
        ['e', { type: 'token', value: 'tok/en' }],
        ['f', { type: 'inner-list', value: [{ type: 'integer', value: 1 }, { type: 'string', value: 'two' }] }],
        ['g', { type: 'decimal', value: 1.5 }],
        ['h', { type: 'bytes', value: 'aGk=' }],
      ]),
    );
  });

  it.each([
    ['a member that is not a key', 'max-age=10000, &&&&&'],
    ['a space before "="', 'max-age =100'],
    ['a space after "="', 'max-age= 100'],
    ['a trailing comma', 'max-age=1,'],
    ['an unterminated string', 'a="x'],
    ['an integer of more than 15 digits', 'a=1234567890123456'],
    ['members without a comma', 'a=1 b=2'],
  ])('rejects the whole field for %s', (_what, value) => {
    expect(parseDictionary(value)).toBeUndefined();
  });
});

describe('a targeted cache-control field (RFC 9213 §2.1)', () => {
  it('maps a valid Dictionary to directives, matching names without regard to case', () => {
    expect(parseTargetedCacheControl('MaX-aGe=3600, public')).toEqual(new Map<string, string | true>([['max-age', '3600'], ['public', true]]));
    expect(parseTargetedCacheControl('foobar, max-age=60')).toEqual(new Map<string, string | true>([['foobar', true], ['max-age', '60']]));
  });

  it('is ignored as a whole when it is not a valid Structured Field', () => {
    expect(parseTargetedCacheControl('max-age=10000, &&&&&')).toBeUndefined();
  });

  it('ignores a freshness directive whose value is not a non-negative Integer', () => {
    expect(parseTargetedCacheControl('max-age="10000"')).toEqual(new Map());
    expect(parseTargetedCacheControl('max-age=1.5, s-maxage=-1')).toEqual(new Map());
  });

  it('treats a directive set to false as absent', () => {
    expect(parseTargetedCacheControl('no-store=?0, max-age=5')).toEqual(new Map([['max-age', '5']]));
  });
});
