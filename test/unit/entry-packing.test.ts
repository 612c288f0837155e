import { describe, expect, it } from 'vitest';
import { entryFields, entryWith, fitsPacked, packOffset, unpackOffset, withBody } from '../../proxy/cache/entry.js';
import { testEntry } from '../helpers/entries.js';

const SMALL_INT_MAX = 2 ** 31 - 1;
const YEAR_MS = 365 * 24 * 3600 * 1000;

describe('packed entry times', () => {
  it('keeps offsets under 2^30 ms (12.4 days) to the millisecond, both ways', () => {
    for (const ms of [0, 1, -1, 999, 60_000, -3_600_000, 2 ** 30 - 1, -(2 ** 30) + 1]) expect(unpackOffset(packOffset(ms))).toBe(ms);
  });

  it('keeps further offsets to the second, never later than they were, within the small-integer range', () => {
    for (const ms of [2 ** 30, 2 ** 30 + 999, YEAR_MS + 123, 30 * YEAR_MS + 456, -(2 ** 30), -YEAR_MS - 1, -30 * YEAR_MS - 999]) {
      const packed = packOffset(ms);
      expect(Number.isInteger(packed)).toBe(true);
      expect(Math.abs(packed)).toBeLessThanOrEqual(SMALL_INT_MAX);
      const back = unpackOffset(packed);
      expect(back).toBeLessThanOrEqual(ms);
      expect(ms - back).toBeLessThan(1000);
    }
  });

  it('says which offsets have a packed form: finite ones within about 34 years', () => {
    expect(fitsPacked(30 * YEAR_MS)).toBe(true);
    expect(fitsPacked(-30 * YEAR_MS)).toBe(true);
    expect(fitsPacked(40 * YEAR_MS)).toBe(false);
    expect(fitsPacked(Infinity)).toBe(false);
    expect(fitsPacked(Number.NaN)).toBe(false);
  });
});

describe('packed entries', () => {
  const now = 1_795_000_000_123;

  it('read back every field exactly as given, for times within 12 days of the response', () => {
    const given = testEntry({ key: 'k', requestTime: now - 40, responseTime: now, initialAge: 2_500, storedAt: now + 3, freshUntil: now + 57_500, staleWhileRevalidateUntil: now + 117_500, staleIfErrorUntil: now + 3_657_500, deleteAt: now + 3_657_500, mustRevalidate: true, immutable: true }, now);
    const packed = withBody(given, given.body);
    expect(Object.keys(packed)).not.toContain('freshUntil');
    expect(entryFields(packed)).toEqual(entryFields(given));
  });

  it('keep each flag apart from the others', () => {
    for (const flag of ['noCache', 'mustRevalidate', 'immutable', 'sharedWithAuthorization'] as const) {
      const packed = withBody(testEntry({ key: 'k', noCache: false, mustRevalidate: false, immutable: false, sharedWithAuthorization: false, [flag]: true }, now), Buffer.from('x'));
      expect([packed.noCache, packed.mustRevalidate, packed.immutable, packed.sharedWithAuthorization].filter(Boolean)).toHaveLength(1);
      expect(packed[flag]).toBe(true);
    }
  });

  it('end a year-long lifetime within a second of its time, never after it', () => {
    const given = testEntry({ key: 'k', responseTime: now, freshUntil: now + YEAR_MS - 7, deleteAt: now + YEAR_MS + 86_400_000 - 7 }, now);
    const packed = withBody(given, given.body);
    expect(packed.freshUntil).toBeLessThanOrEqual(given.freshUntil);
    expect(given.freshUntil - packed.freshUntil).toBeLessThan(1000);
    expect(packed.deleteAt).toBeLessThanOrEqual(given.deleteAt);
    expect(given.deleteAt - packed.deleteAt).toBeLessThan(1000);
    expect(packed.responseTime).toBe(now);
  });

  it('stay plain objects, exact, when their times lie further apart than packing reaches', () => {
    for (const deleteAt of [Infinity, now + 50 * YEAR_MS]) {
      const given = testEntry({ key: 'k', responseTime: now, deleteAt }, now);
      const kept = withBody(given, given.body);
      expect(kept.deleteAt).toBe(deleteAt);
      expect(Object.keys(kept)).toContain('deleteAt');
    }
  });

  it('change only the fields asked for', () => {
    const packed = withBody(testEntry({ key: 'k', responseTime: now, freshUntil: now + 60_000, deleteAt: now + 120_000 }, now), Buffer.from('a'));
    const changed = entryWith(packed, { freshUntil: now + 1, body: Buffer.from('b') });
    expect(entryFields(changed)).toEqual({ ...entryFields(packed), freshUntil: now + 1, body: Buffer.from('b') });
  });
});
