import { describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { judgeResponse, type PolicyOptions } from '../../proxy/cache/policy.js';
import type { HeaderMap } from '../../proxy/http/headers.js';

const NOW = Date.parse('2026-01-01T12:00:00Z');
const config = defaults();
const options: PolicyOptions = { cache: config.cache, tags: config.tags, keepWithValidators: 0, random: () => 0.5 };
const lastModified = new Date(NOW - 1_000_000).toUTCString();

function judge(status: number, headers: HeaderMap) {
  return judgeResponse(
    { requestMethod: 'GET', requestHeaders: {}, status, headers: { date: new Date(NOW).toUTCString(), ...headers }, requestTime: NOW, responseTime: NOW },
    options,
  );
}

describe('the public directive (RFC 9111 §3, §4.2.2)', () => {
  it('lets a response with a status we do not know be stored, with heuristic freshness from Last-Modified', () => {
    const verdict = judge(599, { 'cache-control': 'public', 'last-modified': lastModified });
    expect(verdict.store).toBe(true);
    expect(verdict.store && verdict.plan.lifetime.source).toBe('heuristic');
  });

  it('is what makes the difference: without it such a response is not stored', () => {
    expect(judge(599, { 'last-modified': lastModified })).toEqual({ store: false, reason: 'status' });
    expect(judge(503, { 'last-modified': lastModified })).toEqual({ store: false, reason: 'status' });
  });

  it('still never stores a 206 or a 304 that way', () => {
    expect(judge(206, { 'cache-control': 'public', 'last-modified': lastModified, 'content-range': 'bytes 0-1/10' }).store).toBe(false);
    expect(judge(304, { 'cache-control': 'public', 'last-modified': lastModified }).store).toBe(false);
  });
});
