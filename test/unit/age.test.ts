import { describe, expect, it } from 'vitest';
import { EMPTY_DIRECTIVES } from '../../proxy/cache/cache-control.js';
import { ageFieldSeconds, correctedInitialAge, type ResponseFacts } from '../../proxy/cache/freshness.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');

function withAge(age: string | undefined): ResponseFacts {
  return { status: 200, directives: EMPTY_DIRECTIVES, date: new Date(NOW).toUTCString(), expires: undefined, lastModified: undefined, age };
}

describe('the Age field (RFC 9111 §5.1)', () => {
  it('reads a single non-negative integer', () => {
    expect(ageFieldSeconds('0')).toBe(0);
    expect(ageFieldSeconds(' 7200 ')).toBe(7200);
  });

  it('uses the first member of a list and discards the rest', () => {
    expect(ageFieldSeconds('0, 7200')).toBe(0);
    expect(ageFieldSeconds('0,7200')).toBe(0);
    expect(ageFieldSeconds('7200, 0')).toBe(7200);
  });

  it.each(['abc', '-7200', '7200.0', '', '1;a=b'])('ignores an invalid value %j', (value) => {
    expect(ageFieldSeconds(value)).toBeUndefined();
  });

  it('caps values too large to represent at 2^31 seconds (RFC 9111 §1.2.2)', () => {
    expect(ageFieldSeconds('99999999999999999999')).toBe(2 ** 31);
  });

  it('bounds an ignored Age by the time in flight only, so the response is still fresh', () => {
    expect(correctedInitialAge(withAge('-7200'), NOW - 1_000, NOW)).toBe(1_000);
    expect(correctedInitialAge(withAge('0, 7200'), NOW - 1_000, NOW)).toBe(1_000);
    expect(correctedInitialAge(withAge('7200, 0'), NOW - 1_000, NOW)).toBe(7_201_000);
  });
});
