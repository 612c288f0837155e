import { describe, expect, it } from 'vitest';
import type { OriginHandler } from '../helpers/origin.js';
import { nodeFetch } from '../helpers/node-fetch.js';
import { useRig } from '../helpers/rig.js';

const rig = useRig({ testClock: true });

/** Cacheable GETs that count their versions; other methods answer as configured per path. */
function api(write: (method: string, url: string) => { status: number; headers?: Record<string, string> }): OriginHandler {
  const versions = new Map<string, number>();
  return (request, response) => {
    if (request.method === 'GET' || request.method === 'HEAD') {
      const version = (versions.get(request.url) ?? 0) + 1;
      versions.set(request.url, version);
      response.writeHead(200, { 'cache-control': 'max-age=600' });
      response.end(`${request.url} v${version}`);
      return;
    }
    const { status, headers = {} } = write(request.method, request.url);
    response.writeHead(status, headers);
    response.end(`${request.method} got ${request.body.length} bytes`);
  };
}

describe('methods (RFC 9111 §4.4)', () => {
  it('passes a POST to the origin with its body and never caches it', async () => {
    const p = await rig.start(api(() => ({ status: 200, headers: { 'cache-control': 'max-age=600' } })));
    const first = await p.fetch('/submit', { method: 'POST', body: 'x'.repeat(1000) });
    const second = await p.fetch('/submit', { method: 'POST', body: 'y' });
    expect(first.body).toBe('POST got 1000 bytes');
    expect(second.body).toBe('POST got 1 bytes');
    expect(rig.origin.hits()).toBe(2);
  });

  it('invalidates the URL, its Location and its Content-Location after a successful unsafe request', async () => {
    const p = await rig.start(api(() => ({ status: 201, headers: { location: '/items/7', 'content-location': '/items/latest' } })));
    for (const path of ['/items', '/items/7', '/items/latest']) await p.fetch(path);
    await p.fetch('/items', { method: 'POST', body: '{}' });
    expect((await p.fetch('/items')).body).toBe('/items v2');
    expect((await p.fetch('/items/7')).body).toBe('/items/7 v2');
    expect((await p.fetch('/items/latest')).body).toBe('/items/latest v2');
  });

  it('does not invalidate after an error response, nor for a Location on another host', async () => {
    const p = await rig.start(
      api((_method, url) => (url === '/fail' ? { status: 500 } : { status: 200, headers: { location: 'http://elsewhere.example/items/7' } })),
    );
    await p.fetch('/fail');
    await p.fetch('/items/7');
    await p.fetch('/fail', { method: 'DELETE' });
    await p.fetch('/other', { method: 'PUT', body: 'x' });
    expect((await p.fetch('/fail')).body).toBe('/fail v1');
    expect((await p.fetch('/items/7')).body).toBe('/items/7 v1');
  });

  it('does not serve a stored response to a request with Authorization unless the response allows it (RFC 9111 §3.5)', async () => {
    const p = await rig.start((request, response) => {
      const cacheControl = request.url === '/public' ? 'public, max-age=60' : 'max-age=60';
      response.writeHead(200, { 'cache-control': cacheControl });
      response.end(`for ${request.headers['authorization'] ?? 'anyone'}`);
    });
    await p.fetch('/plain');
    expect((await p.fetch('/plain', { headers: { authorization: 'Bearer alice' } })).body).toBe('for Bearer alice');
    // Nor is the authenticated answer stored for others.
    expect((await p.fetch('/plain', { headers: { authorization: 'Bearer bob' } })).body).toBe('for Bearer bob');
    expect((await p.fetch('/plain')).body).toBe('for anyone');

    await p.fetch('/public', { headers: { authorization: 'Bearer alice' } });
    expect((await p.fetch('/public', { headers: { authorization: 'Bearer bob' } })).body).toBe('for Bearer alice');
  });

  it('does not store a response carrying Set-Cookie by default', async () => {
    const p = await rig.start((_request, response, count) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'set-cookie': `id=${count}` });
      response.end('c');
    });
    await p.fetch('/cookie');
    const second = await p.fetch('/cookie');
    expect(second.headers['set-cookie']).toBe('id=2');
    expect(rig.origin.hits()).toBe(2);
  });
});

describe('request Cache-Control (RFC 9111 §5.2.1)', () => {
  it('lets max-stale serve a stale entry, but never one the origin marked no-cache or must-revalidate', async () => {
    const p = await rig.start((request, response, count) => {
      const cc = request.url === '/ok' ? 'max-age=10' : request.url === '/nc' ? 'no-cache' : 'max-age=10, must-revalidate';
      response.writeHead(200, { 'cache-control': cc, etag: `"${count}"` });
      response.end(`${request.url} ${count}`);
    });
    for (const path of ['/ok', '/nc', '/mr']) await p.fetch(path);
    rig.clock.advance(20);
    const headers = { 'cache-control': 'max-stale=3600' };
    expect((await p.fetch('/ok', { headers })).body).toBe('/ok 1');
    expect(rig.origin.hits('/ok')).toBe(1);
    await p.fetch('/nc', { headers });
    expect(rig.origin.hits('/nc')).toBe(2);
    await p.fetch('/mr', { headers });
    expect(rig.origin.hits('/mr')).toBe(2);
  });

  it('revalidates a fresh entry when the client sends no-cache or a max-age it exceeds', async () => {
    const p = await rig.start((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', etag: '"e"' });
      response.end('r');
    });
    await p.fetch('/r');
    rig.clock.advance(30);
    const noCache = await p.fetch('/r', { headers: { 'cache-control': 'no-cache' } });
    expect(noCache.headers['cache-status']).toContain('fwd=request');
    expect(rig.origin.requests[1]!.headers['if-none-match']).toBe('"e"');
    rig.clock.advance(30);
    await p.fetch('/r', { headers: { 'cache-control': 'max-age=10' } });
    expect(rig.origin.hits()).toBe(3);
    await p.fetch('/r', { headers: { 'cache-control': 'max-age=100' } });
    expect(rig.origin.hits()).toBe(3);
  });

  it('answers only-if-cached with 504 when nothing is stored, without asking the origin', async () => {
    const p = await rig.start((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end('x');
    });
    const answer = await p.fetch('/oic', { headers: { 'cache-control': 'only-if-cached' } });
    expect(answer.status).toBe(504);
    expect(rig.origin.hits()).toBe(0);
  });

  it('leaves a stored entry alone when a request says no-store: the directive is about that request and its answer (§5.2.1.5)', async () => {
    const p = await rig.start((request, response) => {
      if (request.headers['if-none-match'] === '"v1"') {
        response.writeHead(304, { etag: '"v1"', 'cache-control': 'max-age=60' });
        response.end();
        return;
      }
      response.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=60' });
      response.end('stored');
    });
    await p.fetch('/keep');
    const bypass = await p.fetch('/keep', { headers: { 'cache-control': 'no-cache, no-store' } });
    expect(bypass.body).toBe('stored');
    const next = await p.fetch('/keep');
    expect(next.headers['cache-status']).toMatch(/; hit/);
    expect(rig.origin.hits()).toBe(2);
  });

  it('does not store the response to a request that says no-store', async () => {
    const p = await rig.start((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end('x');
    });
    await p.fetch('/ns', { headers: { 'cache-control': 'no-store' } });
    await p.fetch('/ns');
    expect(rig.origin.hits()).toBe(2);
  });
});

describe('request bodies', () => {
  it('forwards a body sent with Expect: 100-continue (the proxy answers the 100 itself)', async () => {
    const p = await rig.start((request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end(`received ${request.body.length} bytes, expect=${request.headers['expect'] ?? 'none'}`);
    });
    const answer = await nodeFetch(`${p.url}/upload`, { method: 'PUT', headers: { expect: '100-continue', 'content-length': '2000' }, body: 'x'.repeat(2000) });
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('received 2000 bytes, expect=none');
  });

  it('streams a request body to the origin as it arrives, without waiting for the end', async () => {
    const { request: httpRequest } = await import('node:http');
    let firstChunkSeen!: () => void;
    const seen = new Promise<void>((resolve) => (firstChunkSeen = resolve));
    let received = 0;
    const { createServer } = await import('node:http');
    const streamingOrigin = createServer((req, res) => {
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
        firstChunkSeen();
      });
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`received ${received}`);
      });
    });
    await new Promise<void>((resolve) => streamingOrigin.listen(0, '127.0.0.1', resolve));
    const port = (streamingOrigin.address() as { port: number }).port;
    const proxy = await rig.startProxyTo(`http://127.0.0.1:${port}`);
    try {
      const { hostname, port: proxyPort } = new URL(proxy.url);
      const answer = new Promise<string>((resolve, reject) => {
        const req = httpRequest({ host: hostname, port: proxyPort, method: 'PUT', path: '/upload', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.write(Buffer.alloc(64 * 1024, 1));
        // The rest is sent only once the origin has the first part: a buffering proxy would deadlock here.
        void seen.then(() => {
          for (let i = 0; i < 15; i++) req.write(Buffer.alloc(64 * 1024, 2));
          req.end();
        });
      });
      expect(await answer).toBe(`received ${16 * 64 * 1024}`);
    } finally {
      await new Promise<void>((resolve) => streamingOrigin.close(() => resolve()));
    }
  });
});
