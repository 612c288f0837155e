import { describe, expect, it } from 'vitest';
import { rangeFor } from '../../proxy/cache/range.js';

const none = { etag: undefined, lastModified: undefined };
const range = (value: string, size: number) => rangeFor({ range: value }, size, none);

describe('byte ranges from a stored response (RFC 9110 §14)', () => {
  it('answers one range with its first and last byte, clamped to the size', () => {
    expect(range('bytes=0-4', 10)).toEqual({ kind: 'partial', start: 0, end: 4 });
    expect(range('bytes=5-', 10)).toEqual({ kind: 'partial', start: 5, end: 9 });
    expect(range('bytes=5-100', 10)).toEqual({ kind: 'partial', start: 5, end: 9 });
    expect(range('bytes=-3', 10)).toEqual({ kind: 'partial', start: 7, end: 9 });
    expect(range('bytes=-30', 10)).toEqual({ kind: 'partial', start: 0, end: 9 });
  });

  it('finds a range past the end, or any range of an empty body, unsatisfiable (§14.1.1)', () => {
    expect(range('bytes=10-', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(range('bytes=-0', 10)).toEqual({ kind: 'unsatisfiable' });
    expect(range('bytes=-5', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(range('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
  });

  it('sends the whole representation for several ranges or a syntax it does not take (§14.2)', () => {
    expect(range('bytes=0-1,3-4', 10)).toEqual({ kind: 'full' });
    expect(range('items=0-1', 10)).toEqual({ kind: 'full' });
    expect(range('bytes=5-2', 10)).toEqual({ kind: 'full' });
  });

  it('sends the whole representation when If-Range names another one (§13.1.5)', () => {
    expect(rangeFor({ range: 'bytes=0-1', 'if-range': '"b"' }, 10, { etag: '"a"', lastModified: undefined })).toEqual({ kind: 'full' });
    expect(rangeFor({ range: 'bytes=0-1', 'if-range': '"a"' }, 10, { etag: '"a"', lastModified: undefined })).toEqual({ kind: 'partial', start: 0, end: 1 });
  });
});
