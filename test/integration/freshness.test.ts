import { describe, expect, it } from 'vitest';
import { useRig } from '../helpers/rig.js';
import { respond, startOrigin, type OriginHandler, type TestOrigin } from '../helpers/origin.js';

const rig = useRig({ testClock: true });

describe('freshness (RFC 9111 §4.2)', () => {
  it('serves a max-age response from cache until it expires', async () => {
    const p = await rig.start(respond(200, { 'cache-control': 'max-age=60' }, 'hello'));
    const first = await p.fetch('/a');
    expect(first.body).toBe('hello');
    expect(first.headers['cache-status']).toContain('fwd=uri-miss');
    expect(first.headers['cache-status']).toContain('stored');

    rig.clock.advance(30);
    const second = await p.fetch('/a');
    expect(second.body).toBe('hello');
    expect(second.headers['cache-status']).toMatch(/; hit; ttl=30/);
    expect(second.headers['age']).toBe('30');
    expect(rig.origin.hits()).toBe(1);

    rig.clock.advance(31);
    await p.fetch('/a');
    expect(rig.origin.hits()).toBe(2);
  });

  it('prefers s-maxage over max-age in a shared cache', async () => {
    const p = await rig.start(respond(200, { 'cache-control': 'max-age=1, s-maxage=100' }, 'x'));
    await p.fetch('/s');
    rig.clock.advance(50);
    const hit = await p.fetch('/s');
    expect(hit.headers['cache-status']).toContain('hit');
    expect(rig.origin.hits()).toBe(1);
  });

  it('uses Expires when Cache-Control gives no lifetime, and treats an invalid Expires as stale', async () => {
    const p = await rig.start((request, response) => {
      const expires = request.url === '/valid' ? new Date(rig.clock.now() + 60_000).toUTCString() : '0';
      response.writeHead(200, { expires, etag: '"v"' });
      response.end('e');
    });
    await p.fetch('/valid');
    rig.clock.advance(30);
    expect((await p.fetch('/valid')).headers['cache-status']).toContain('hit');
    rig.clock.advance(31);
    await p.fetch('/valid');
    expect(rig.origin.hits('/valid')).toBe(2);

    await p.fetch('/invalid');
    await p.fetch('/invalid');
    expect(rig.origin.hits('/invalid')).toBe(2);
  });

  it('computes a heuristic lifetime from Last-Modified, capped by heuristicMaxTtl', async () => {
    const tenDaysAgo = new Date(Date.now() - 10 * 86_400_000).toUTCString();
    const p = await rig.start(respond(200, { 'last-modified': tenDaysAgo }, 'h'), { config: { cache: { heuristicMaxTtl: 3_600_000 } } });
    await p.fetch('/h');
    rig.clock.advance(1800);
    expect((await p.fetch('/h')).headers['cache-status']).toContain('hit');
    rig.clock.advance(1801);
    const after = await p.fetch('/h');
    expect(after.headers['cache-status']).toContain('fwd=stale');
    expect(rig.origin.hits()).toBe(2);
  });

  it('subtracts the Age the origin reports from the lifetime, and sends the sum on hits', async () => {
    const p = await rig.start(respond(200, { 'cache-control': 'max-age=60', age: '40' }, 'aged'));
    await p.fetch('/aged');
    rig.clock.advance(10);
    const hit = await p.fetch('/aged');
    expect(hit.headers['age']).toBe('50');
    rig.clock.advance(11);
    await p.fetch('/aged');
    expect(rig.origin.hits()).toBe(2);
  });

  it.each([
    ['no-store', 'no-store'],
    ['private', 'private, max-age=60'],
  ])('never stores a %s response', async (_name, cacheControl) => {
    const p = await rig.start(respond(200, { 'cache-control': cacheControl }, 'secret'));
    await p.fetch('/n');
    const second = await p.fetch('/n');
    expect(second.body).toBe('secret');
    expect(rig.origin.hits()).toBe(2);
  });

  it('revalidates a no-cache response on every use and serves the stored body on 304', async () => {
    const p = await rig.start((request, response) => {
      if (request.headers['if-none-match'] === '"t1"') {
        response.writeHead(304, { etag: '"t1"', 'cache-control': 'no-cache' });
        response.end();
        return;
      }
      response.writeHead(200, { etag: '"t1"', 'cache-control': 'no-cache' });
      response.end('body-1');
    });
    await p.fetch('/nc');
    const second = await p.fetch('/nc');
    expect(second.status).toBe(200);
    expect(second.body).toBe('body-1');
    expect(second.headers['cache-status']).toContain('fwd-status=304');
    expect(rig.origin.hits()).toBe(2);
    expect(rig.origin.requests[1]!.headers['if-none-match']).toBe('"t1"');
  });

  it.each(['must-revalidate', 'proxy-revalidate'])('never serves a stale %s response when the origin is down', async (directive) => {
    const p = await rig.start((_request, response, count) => {
      if (count > 1) {
        response.writeHead(503, { 'content-type': 'text/plain' });
        response.end('down');
        return;
      }
      response.writeHead(200, { 'cache-control': `max-age=10, ${directive}, stale-if-error=600` });
      response.end('ok');
    });
    await p.fetch('/mr');
    rig.clock.advance(20);
    const after = await p.fetch('/mr');
    expect(after.status).toBe(503);
    expect(after.body).toBe('down');
  });

  it('treats a fresh immutable response as fresh even when the client asks to revalidate', async () => {
    const p = await rig.start(respond(200, { 'cache-control': 'max-age=600, immutable' }, 'imm'));
    await p.fetch('/imm');
    const forced = await p.fetch('/imm', { headers: { 'cache-control': 'no-cache' } });
    expect(forced.headers['cache-status']).toContain('hit');
    expect(rig.origin.hits()).toBe(1);
  });

  it('assigns the configured default TTL only to responses that say nothing', async () => {
    const p = await rig.start(
      (request, response) => {
        response.writeHead(200, request.url === '/explicit' ? { 'cache-control': 'max-age=0' } : {});
        response.end('d');
      },
      { config: { cache: { defaultTtl: 60_000 } } },
    );
    await p.fetch('/silent');
    rig.clock.advance(30);
    expect((await p.fetch('/silent')).headers['cache-status']).toContain('hit');
    await p.fetch('/explicit');
    await p.fetch('/explicit');
    expect(rig.origin.hits('/explicit')).toBe(2);
  });

  it('stores nothing without freshness information when no default TTL is configured', async () => {
    const p = await rig.start(respond(200, {}, 'plain'));
    await p.fetch('/plain');
    await p.fetch('/plain');
    expect(rig.origin.hits()).toBe(2);
  });

  it('caches 404 and 410 for the negative TTL when configured, and not otherwise', async () => {
    const p = await rig.start(respond(404, {}, 'gone'), { config: { cache: { negativeTtl: 30_000 } } });
    await p.fetch('/missing');
    rig.clock.advance(20);
    const hit = await p.fetch('/missing');
    expect(hit.status).toBe(404);
    expect(hit.headers['cache-status']).toContain('hit');
    rig.clock.advance(20);
    await p.fetch('/missing');
    expect(rig.origin.hits()).toBe(2);
  });
});
