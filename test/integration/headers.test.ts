import { describe, expect, it } from 'vitest';
import { TestClock } from '../helpers/clock.js';
import { useRig } from '../helpers/rig.js';
import { respond, startOrigin, type OriginHandler, type TestOrigin } from '../helpers/origin.js';
import { connect } from 'node:net';

const rig = useRig();

/** Sends raw bytes and returns the raw response, for headers a client library would not let through. */
function rawRequest(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    // Written without half-closing: the request asks for Connection: close, so the server ends the exchange.
    const socket = connect(Number(port), hostname, () => socket.write(text));
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

describe('headers at the proxy boundaries (RFC 9110 §7.6)', () => {
  it('removes hop-by-hop headers and those named in Connection, both ways', async () => {
    const p = await rig.start((_request, response) => {
      response.setHeader('connection', 'x-origin-secret');
      response.setHeader('x-origin-secret', 'do not forward');
      response.setHeader('keep-alive', 'timeout=5');
      response.setHeader('proxy-authenticate', 'Basic');
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end('ok');
    });
    const raw = await rawRequest(
      p.url,
      'GET /hop HTTP/1.1\r\nHost: example.test\r\nConnection: x-client-secret, close\r\nX-Client-Secret: hidden\r\nProxy-Authorization: Basic Zm9v\r\nTE: trailers\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1\.1 200/);
    expect(raw.toLowerCase()).not.toContain('x-origin-secret');
    expect(raw.toLowerCase()).not.toContain('proxy-authenticate');
    const seen = rig.origin.requests[0]!.headers;
    expect(seen['x-client-secret']).toBeUndefined();
    expect(seen['proxy-authorization']).toBeUndefined();
    expect(seen['te']).toBeUndefined();
  });

  it('adds Via both ways and sets X-Forwarded-For, -Proto and -Host', async () => {
    const p = await rig.start(respond(200, { 'cache-control': 'max-age=60' }, 'v'));
    const answer = await p.fetch('/via', { headers: { host: 'shop.example', 'x-forwarded-for': '203.0.113.9' } });
    expect(answer.headers['via']).toBe('1.1 lacquer');
    const seen = rig.origin.requests[0]!.headers;
    expect(seen['via']).toBe('1.1 lacquer');
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).toBe('shop.example');
    // The origin is addressed by its own host unless preserveHost is set.
    expect(seen['host']).toBe(new URL(rig.origin.url).host);
  });

  it('sends the client Host upstream when preserveHost is set', async () => {
    const p = await rig.start(respond(200, {}, 'h'), { config: { origin: { preserveHost: true } } });
    await p.fetch('/host', { headers: { host: 'shop.example' } });
    expect(rig.origin.requests[0]!.headers['host']).toBe('shop.example');
  });

  it('strips unkeyed headers that could poison the cache, so one client cannot change what others get', async () => {
    const p = await rig.start((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end(`link to ${request.headers['x-forwarded-host'] ?? '?'} ${request.headers['x-original-url'] ?? ''}`);
    });
    const poisoned = await p.fetch('/page', { headers: { host: 'shop.example', 'x-forwarded-host': 'evil.example', 'x-original-url': '/admin' } });
    expect(poisoned.body).toBe('link to shop.example ');
    expect((await p.fetch('/page', { headers: { host: 'shop.example' } })).body).toBe('link to shop.example ');
  });

  it('keys a header the config names, and forwards it instead of stripping it', async () => {
    const p = await rig.start(
      (request, response) => {
        response.writeHead(200, { 'cache-control': 'max-age=60' });
        response.end(`original ${request.headers['x-original-url'] ?? '-'}`);
      },
      { config: { key: { headers: ['x-original-url'] } } },
    );
    expect((await p.fetch('/k', { headers: { 'x-original-url': '/a' } })).body).toBe('original /a');
    expect((await p.fetch('/k', { headers: { 'x-original-url': '/b' } })).body).toBe('original /b');
    expect((await p.fetch('/k', { headers: { 'x-original-url': '/a' } })).headers['cache-status']).toContain('hit');
    expect(rig.origin.hits()).toBe(2);
  });

  it('sends a Cache-Status header on every response', async () => {
    // One clock for origin Date and proxy, so the remaining TTL is exact even when the real clock crosses a second.
    const clock = new TestClock();
    const p = await rig.start(
      (request, response) => {
        response.writeHead(request.method === 'POST' ? 201 : 200, { 'cache-control': request.url === '/p' ? 'private' : 'max-age=60' });
        response.end('x');
      },
      { clock: clock.now },
    );
    const statuses = [
      (await p.fetch('/c')).headers['cache-status'],
      (await p.fetch('/c')).headers['cache-status'],
      (await p.fetch('/p')).headers['cache-status'],
      (await p.fetch('/c', { method: 'POST', body: 'x' })).headers['cache-status'],
    ];
    expect(statuses).toEqual([
      'lacquer; fwd=uri-miss; fwd-status=200; stored; ttl=60',
      expect.stringMatching(/^lacquer; hit; ttl=\d+$/),
      'lacquer; fwd=uri-miss; fwd-status=200; detail=private',
      'lacquer; fwd=method; fwd-status=201',
    ]);
  });

  it('stores tags from Surrogate-Key and Cache-Tag and strips those headers from responses', async () => {
    const p = await rig.start(respond(200, { 'cache-control': 'max-age=60', 'surrogate-key': 'a b', 'cache-tag': 'b,c' }, 't'));
    const miss = await p.fetch('/t');
    const hit = await p.fetch('/t');
    for (const answer of [miss, hit]) {
      expect(answer.headers['surrogate-key']).toBeUndefined();
      expect(answer.headers['cache-tag']).toBeUndefined();
    }
    const stored = p.store.get(`${new URL(p.url).host}/t`)?.[0];
    expect(stored?.tags).toEqual(['a', 'b', 'c']);
  });
});

describe('Content-Type as the origin sent it (RFC 9110 §8.3)', () => {
  // A recipient may assume application/octet-stream for a body without one; a proxy must not write that in, nor rewrite a repeated field.
  it.each([
    ['no Content-Type', undefined],
    ['a Content-Type that is not a media type', 'nonsense'],
    ['a repeated Content-Type', ['text/plain; charset=utf-8', 'text/html']],
  ])('keeps %s on the miss that stores the answer and on the hits that follow', async (_name, contentType) => {
    const p = await rig.start((_request, response) => {
      if (contentType !== undefined) response.setHeader('content-type', contentType);
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '5' });
      response.end('bytes');
    });
    for (let i = 0; i < 3; i++) {
      const answer = await p.fetch('/typed-as-sent');
      expect(answer.body).toBe('bytes');
      expect(answer.headers['content-type']).toEqual(contentType);
      expect(answer.headers['content-length']).toBe('5');
      expect(answer.headers['cache-status']).toContain(i === 0 ? 'stored' : 'hit');
    }
    expect(rig.origin.hits('/typed-as-sent')).toBe(1);
  });
});
