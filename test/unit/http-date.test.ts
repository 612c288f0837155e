import { describe, expect, it } from 'vitest';
import { parseHttpDate } from '../../proxy/http/date.js';

const AUG_18_2050 = Date.UTC(2050, 7, 18, 2, 1, 18);
const NOW = Date.UTC(2026, 0, 1);

describe('HTTP-date parsing (RFC 9110 §5.6.7)', () => {
  it('reads the IMF-fixdate form', () => {
    expect(parseHttpDate('Thu, 18 Aug 2050 02:01:18 GMT', NOW)).toBe(AUG_18_2050);
    expect(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT', NOW)).toBe(Date.UTC(1994, 10, 6, 8, 49, 37));
  });

  it('reads the obsolete rfc850 form, placing a two-digit year within 50 years of now', () => {
    expect(parseHttpDate('Thursday, 18-Aug-50 02:01:18 GMT', NOW)).toBe(AUG_18_2050);
    expect(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT', NOW)).toBe(Date.UTC(1994, 10, 6, 8, 49, 37));
    // 2090 would be more than 50 years ahead of 2026, so "90" is 1990.
    expect(parseHttpDate('Monday, 01-Jan-90 00:00:00 GMT', NOW)).toBe(Date.UTC(1990, 0, 1));
  });

  it('reads the obsolete asctime form, with a space-padded day', () => {
    expect(parseHttpDate('Mon Aug  8 02:01:18 2050', NOW)).toBe(Date.UTC(2050, 7, 8, 2, 1, 18));
    expect(parseHttpDate('Sun Nov  6 08:49:37 1994', NOW)).toBe(Date.UTC(1994, 10, 6, 8, 49, 37));
  });

  it('matches day, month and zone names without regard to case', () => {
    expect(parseHttpDate('THU, 18 Aug 2050 02:01:18 GMT', NOW)).toBe(AUG_18_2050);
    expect(parseHttpDate('Thu, 18 AUG 2050 02:01:18 GMT', NOW)).toBe(AUG_18_2050);
    expect(parseHttpDate('Thu, 18 Aug 2050 02:01:18 gmt', NOW)).toBe(AUG_18_2050);
  });

  it.each([
    ['another zone name', 'Thu, 18 Aug 2050 02:01:18 UTC'],
    ['a zone offset', 'Thu, 18 Aug 2050 02:01:18 AEST'],
    ['a two-digit year in the fixdate form', 'Thu, 18 Aug 50 02:01:18 GMT'],
    ['no comma after the day', 'Thu 18 Aug 2050 02:01:18 GMT'],
    ['doubled spaces', 'Thu, 18  Aug  2050 02:01:18 GMT'],
    ['dashes in the fixdate form', 'Thu, 18-Aug-2050 02:01:18 GMT'],
    ['periods in the time', 'Thu, 18 Aug 2050 02.01.18 GMT'],
    ['a one-digit hour', 'Thu, 18 Aug 2050 2:01:18 GMT'],
    ['two values joined from two field lines', 'Thu, 18 Aug 2050 02:01:18 GMT, Thu, 18 Aug 2050 02:01:19 GMT'],
    ['a bare number', '0'],
    ['an ISO 8601 date', '2050-08-18T02:01:18Z'],
    ['a day the month does not have', 'Sat, 31 Feb 2050 02:01:18 GMT'],
    ['an hour out of range', 'Thu, 18 Aug 2050 24:01:18 GMT'],
    ['an unknown day name', 'Thr, 18 Aug 2050 02:01:18 GMT'],
  ])('rejects %s', (_what, value) => {
    expect(parseHttpDate(value, NOW)).toBeNaN();
  });

  it('is NaN for an absent value', () => {
    expect(parseHttpDate(undefined, NOW)).toBeNaN();
  });
});
