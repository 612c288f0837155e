import { describe, expect, it } from 'vitest';
import { loggedPath } from '../../metrics/access-log.js';

describe('the path an access line records', () => {
  it('drops the query, which may carry tokens', () => {
    expect(loggedPath('/search?q=x&token=abc')).toBe('/search');
    expect(loggedPath('/plain')).toBe('/plain');
  });

  it('drops the scheme and authority of an absolute-form target, credentials and all (RFC 9112 §3.2.2)', () => {
    expect(loggedPath('http://alice:s3cret@127.0.0.1/private?token=abc')).toBe('/private');
    expect(loggedPath('http://example.com')).toBe('/');
    expect(loggedPath('http://bob:pw@example.com?x=1')).toBe('/');
  });
});
