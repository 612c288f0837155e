import { describe, expect, it } from 'vitest';
import type { OriginHandler } from '../helpers/origin.js';
import { useRig } from '../helpers/rig.js';

const rig = useRig({ testClock: true });

const lastModified = new Date(Date.now() - 86_400_000).toUTCString();

/** An origin with validators that answers its own conditionals with 304. */
function validating(cacheControl: string, extra: (count: number) => Record<string, string> = () => ({})): OriginHandler {
  return (request, response, count) => {
    const headers = { etag: '"abc"', 'last-modified': lastModified, 'cache-control': cacheControl, 'content-type': 'text/plain', ...extra(count) };
    if (request.headers['if-none-match'] === '"abc"') {
      response.writeHead(304, headers);
      response.end();
      return;
    }
    response.writeHead(200, headers);
    response.end('the body');
  };
}

describe('conditional requests', () => {
  it('answers a client If-None-Match from a fresh entry with 304, without asking the origin', async () => {
    const p = await rig.start(validating('max-age=60'));
    await p.fetch('/c');
    const conditional = await p.fetch('/c', { headers: { 'if-none-match': 'W/"abc"' } });
    expect(conditional.status).toBe(304);
    expect(conditional.body).toBe('');
    expect(conditional.headers['etag']).toBe('"abc"');
    expect(conditional.headers['content-type']).toBeUndefined();
    expect(rig.origin.hits()).toBe(1);
  });

  it('answers If-Modified-Since from a fresh entry, and a non-matching validator with the full body', async () => {
    const p = await rig.start(validating('max-age=60'));
    await p.fetch('/c');
    expect((await p.fetch('/c', { headers: { 'if-modified-since': new Date().toUTCString() } })).status).toBe(304);
    const other = await p.fetch('/c', { headers: { 'if-none-match': '"other"' } });
    expect(other.status).toBe(200);
    expect(other.body).toBe('the body');
    expect(rig.origin.hits()).toBe(1);
  });

  it('answers a conditional miss with 304 after storing the full response the origin sent', async () => {
    const p = await rig.start(validating('max-age=60'));
    const first = await p.fetch('/c', { headers: { 'if-none-match': '"abc"' } });
    expect(first.status).toBe(304);
    // The origin was asked without the client's validator, so the full body is stored.
    expect(rig.origin.requests[0]!.headers['if-none-match']).toBeUndefined();
    expect((await p.fetch('/c')).body).toBe('the body');
    expect(rig.origin.hits()).toBe(1);
  });

  it('revalidates a stale entry with its validators; a 304 freshens it and merges the new headers', async () => {
    const p = await rig.start(validating('max-age=10', (count) => ({ 'x-version': String(count) })));
    await p.fetch('/c');
    rig.clock.advance(20);
    const revalidated = await p.fetch('/c');
    expect(rig.origin.requests[1]!.headers['if-none-match']).toBe('"abc"');
    expect(rig.origin.requests[1]!.headers['if-modified-since']).toBe(lastModified);
    expect(revalidated.status).toBe(200);
    expect(revalidated.body).toBe('the body');
    expect(revalidated.headers['x-version']).toBe('2');
    expect(revalidated.headers['cache-status']).toContain('fwd=stale; fwd-status=304');
    // Freshened: the next request is a hit for another full lifetime.
    rig.clock.advance(9);
    const hit = await p.fetch('/c');
    expect(hit.headers['cache-status']).toContain('hit');
    expect(hit.headers['x-version']).toBe('2');
    expect(hit.headers['age']).toBe('9');
    expect(rig.origin.hits()).toBe(2);
  });

  it('replaces the stored entry when revalidation returns a new 200', async () => {
    const p = await rig.start((request, response, count) => {
      response.writeHead(200, { etag: `"v${count}"`, 'cache-control': 'max-age=10' });
      response.end(`body ${count}`);
    });
    await p.fetch('/r');
    rig.clock.advance(20);
    expect((await p.fetch('/r')).body).toBe('body 2');
    const hit = await p.fetch('/r');
    expect(hit.body).toBe('body 2');
    expect(hit.headers['etag']).toBe('"v2"');
    expect(rig.origin.hits()).toBe(2);
  });

  it('gives HEAD the stored headers without a body, from an entry filled by GET', async () => {
    const p = await rig.start(validating('max-age=60'));
    await p.fetch('/c');
    const head = await p.fetch('/c', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe('8');
    expect(head.headers['cache-status']).toContain('hit');
    expect(rig.origin.hits()).toBe(1);
  });

  it('fills the cache with a GET when the first request is a HEAD', async () => {
    const p = await rig.start(validating('max-age=60'));
    const head = await p.fetch('/h', { method: 'HEAD' });
    expect(head.body).toBe('');
    expect(rig.origin.requests[0]!.method).toBe('GET');
    expect((await p.fetch('/h')).body).toBe('the body');
    expect(rig.origin.hits()).toBe(1);
  });
});
