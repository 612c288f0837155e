import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExampleOrigin, type ExampleOrigin } from '../../examples/origin.js';

// The example origin is what a first-time user sees behind Lacquer, so its
// headers are checked over real HTTP, exactly as the proxy will receive them.

describe('example origin', () => {
  let origin: ExampleOrigin;
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${origin.url}${path}`, { headers });

  beforeAll(async () => {
    origin = await startExampleOrigin({ port: 0 });
  });
  afterAll(async () => {
    await origin.close();
  });

  it('listens on the port it was given (0 picks a free one) and lists its endpoints', async () => {
    expect(origin.port).toBeGreaterThan(0);
    expect(origin.url).toBe(`http://127.0.0.1:${origin.port}`);
    const response = await get('/');
    expect(response.status).toBe(200);
    const index = (await response.json()) as { endpoints: Record<string, string> };
    expect(Object.keys(index.endpoints)).toEqual(expect.arrayContaining(['GET /fresh', 'GET /swr', 'GET /tagged/:id', 'POST /items']));
  });

  it('/fresh is public for a minute, has an ETag and counts the hits that reach it', async () => {
    const first = await get('/fresh');
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('public, max-age=60');
    expect(first.headers.get('etag')).toMatch(/^"[^"]+"$/);
    expect(first.headers.get('date')).not.toBeNull();
    expect(first.headers.get('content-type')).toContain('application/json');
    expect(first.headers.get('x-origin-hits')).toBe('1');
    const second = await get('/fresh');
    expect(second.headers.get('x-origin-hits')).toBe('2');
    expect(second.headers.get('etag')).toBe(first.headers.get('etag'));
  });

  it('/swr answers a matching If-None-Match with 304 (weak comparison) and a different one with 200', async () => {
    const first = await get('/swr');
    const etag = first.headers.get('etag');
    expect(first.headers.get('cache-control')).toBe('max-age=5, stale-while-revalidate=30, stale-if-error=300');
    expect(etag).not.toBeNull();

    const revalidated = await get('/swr', { 'if-none-match': `"other", ${etag}` });
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.get('etag')).toBe(etag);
    expect(revalidated.headers.get('cache-control')).toBe('max-age=5, stale-while-revalidate=30, stale-if-error=300');
    expect(await revalidated.text()).toBe('');

    expect((await get('/swr', { 'if-none-match': `W/${etag}` })).status).toBe(304);
    expect((await get('/swr', { 'if-none-match': '"something-else"' })).status).toBe(200);
  });

  it('/last-modified carries only Last-Modified and honours If-Modified-Since', async () => {
    const first = await get('/last-modified');
    const lastModified = first.headers.get('last-modified');
    expect(first.headers.get('cache-control')).toBeNull();
    expect(first.headers.get('etag')).toBeNull();
    expect(Date.now() - Date.parse(lastModified ?? '')).toBeGreaterThanOrEqual(86_400_000);
    expect((await get('/last-modified', { 'if-modified-since': lastModified ?? '' })).status).toBe(304);
  });

  it('/vary greets by Accept-Language and says so in Vary', async () => {
    const greeting = async (acceptLanguage?: string) => {
      const response = await get('/vary', acceptLanguage === undefined ? {} : { 'accept-language': acceptLanguage });
      expect(response.headers.get('vary')).toBe('Accept-Language');
      expect(response.headers.get('cache-control')).toBe('max-age=60');
      return ((await response.json()) as { greeting: string }).greeting;
    };
    expect(await greeting('fr-FR,fr;q=0.9')).toBe('Bonjour');
    expect(await greeting('de')).toBe('Hallo');
    expect(await greeting('es, de;q=0.5, fr;q=0.8')).toBe('Bonjour');
    expect(await greeting('ja')).toBe('Hello');
    expect(await greeting()).toBe('Hello');
  });

  it('/tagged/:id carries both tag headers', async () => {
    const response = await get('/tagged/42');
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('max-age=300');
    expect(response.headers.get('surrogate-key')).toBe('product-42 products');
    expect(response.headers.get('cache-tag')).toBe('product-42,products');
    expect(await response.json()).toEqual({ product: '42' });
    expect((await get('/tagged')).status).toBe(404);
  });

  it('/flaky alternates between success and 503', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const response = await get('/flaky');
      statuses.push(response.status);
      if (response.status === 200) expect(response.headers.get('cache-control')).toBe('max-age=2, stale-if-error=60');
      await response.arrayBuffer();
    }
    expect(statuses).toEqual([200, 503, 200, 503]);
  });

  it('POST /items answers 201 with a Location and the size of the body it got', async () => {
    const body = JSON.stringify({ name: 'teapot' });
    const response = await fetch(`${origin.url}/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(response.status).toBe(201);
    expect(response.headers.get('location')).toBe('/items/1');
    expect(await response.json()).toEqual({ created: '/items/1', receivedBytes: Buffer.byteLength(body) });
  });

  it('answers unknown paths with a briefly cacheable 404 and wrong methods with 405', async () => {
    const missing = await get('/nope');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('cache-control')).toBe('max-age=5');
    const wrongMethod = await fetch(`${origin.url}/fresh`, { method: 'DELETE' });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('GET');
  });

  it('/big sends the requested number of KiB', async () => {
    const response = await get('/big?kib=3');
    expect(response.headers.get('content-length')).toBe(String(3 * 1024));
    expect((await response.arrayBuffer()).byteLength).toBe(3 * 1024);
  });
});

describe('example origin close()', () => {
  it('releases the port even with a keep-alive connection open', async () => {
    const origin = await startExampleOrigin({ port: 0 });
    const response = await fetch(`${origin.url}/fresh`);
    await response.arrayBuffer();
    await origin.close();
    await origin.close(); // a second call is harmless

    await expect(fetch(`${origin.url}/fresh`)).rejects.toThrow();
    // The port is free again: something else can listen on it.
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(origin.port, '127.0.0.1', resolve);
    });
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  });
});
