import { describe, expect, it } from 'vitest';
import type { OriginHandler } from '../helpers/origin.js';
import { useRig } from '../helpers/rig.js';

const rig = useRig();

function echo(vary: string, field: string): OriginHandler {
  return (request, response) => {
    response.writeHead(200, { 'cache-control': 'max-age=60', vary });
    response.end(`${field}=${request.headers[field] ?? ''}`);
  };
}

describe('keys and variants (RFC 9111 §4.1)', () => {
  it('keeps one variant per value of the Vary header and serves each to its own clients', async () => {
    const p = await rig.start(echo('Accept-Language', 'accept-language'));
    for (const lang of ['en', 'fr', 'en', 'fr', 'de']) {
      const answer = await p.fetch('/v', { headers: { 'accept-language': lang } });
      expect(answer.body).toBe(`accept-language=${lang}`);
    }
    expect(rig.origin.hits()).toBe(3);
  });

  it('buckets Accept-Encoding and sends the bucket upstream, so equivalent clients share a variant', async () => {
    const p = await rig.start(echo('Accept-Encoding', 'accept-encoding'));
    const a = await p.fetch('/ae', { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    const b = await p.fetch('/ae', { headers: { 'accept-encoding': 'br;q=1.0, gzip;q=0.8, zstd' } });
    const c = await p.fetch('/ae', { headers: { 'accept-encoding': 'gzip' } });
    const d = await p.fetch('/ae', { headers: { 'accept-encoding': 'gzip;q=0, identity' } });
    expect(a.body).toBe('accept-encoding=br, gzip');
    expect(b.body).toBe('accept-encoding=br, gzip');
    expect(c.body).toBe('accept-encoding=gzip');
    expect(d.body).toBe('accept-encoding=identity');
    expect(rig.origin.hits()).toBe(3);
  });

  it('never serves a Vary: * response from cache', async () => {
    const p = await rig.start(echo('*', 'x'));
    await p.fetch('/star');
    await p.fetch('/star');
    expect(rig.origin.hits()).toBe(2);
  });

  it('caps the variants kept per key, dropping the oldest', async () => {
    const p = await rig.start(echo('X-Variant', 'x-variant'), { config: { cache: { maxVariants: 3 } } });
    for (let i = 0; i < 10; i++) await p.fetch('/many', { headers: { 'x-variant': String(i) } });
    const stored = p.store.get(`${new URL(p.url).host}/many`) ?? [];
    expect(stored.map((entry) => entry.variant)).toEqual(['x-variant=9\n', 'x-variant=8\n', 'x-variant=7\n']);
    await p.fetch('/many', { headers: { 'x-variant': '0' } });
    expect(rig.origin.hits()).toBe(11);
  });

  it('sorts query parameters into one key and drops the configured ones, upstream too', async () => {
    const p = await rig.start(
      (request, response) => {
        response.writeHead(200, { 'cache-control': 'max-age=60' });
        response.end(request.url);
      },
      { config: { key: { query: { sort: true, drop: ['utm_source'] } } } },
    );
    expect((await p.fetch('/q?b=2&a=1&utm_source=mail')).body).toBe('/q?a=1&b=2');
    expect((await p.fetch('/q?a=1&b=2')).headers['cache-status']).toContain('hit');
    expect((await p.fetch('/q?utm_source=x&b=2&a=1')).headers['cache-status']).toContain('hit');
    expect(rig.origin.hits()).toBe(1);
  });

  it('keys by host, so two sites behind one proxy never share entries', async () => {
    const p = await rig.start((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end(`site ${request.headers['x-forwarded-host']}`);
    });
    expect((await p.fetch('/', { headers: { host: 'a.example' } })).body).toBe('site a.example');
    expect((await p.fetch('/', { headers: { host: 'b.example' } })).body).toBe('site b.example');
    expect(rig.origin.hits()).toBe(2);
  });

  it('does not let a 304 that adds Vary turn a stored answer into one for every variant', async () => {
    const p = await rig.start((request, response, count) => {
      if (count > 1 && request.headers['if-none-match'] === '"v1"') {
        response.writeHead(304, { etag: '"v1"', vary: 'Accept-Language', 'cache-control': 'max-age=600' });
        response.end();
        return;
      }
      response.writeHead(200, { etag: '"v1"', 'cache-control': 'max-age=0' });
      response.end(`for ${request.headers['accept-language'] ?? 'anyone'}`);
    });
    await p.fetch('/l', { headers: { 'accept-language': 'en' } });
    // Revalidated: the 304 now says the answer varies on the language.
    await p.fetch('/l', { headers: { 'accept-language': 'en' } });
    const french = await p.fetch('/l', { headers: { 'accept-language': 'fr' } });
    expect(french.headers['cache-status']).not.toMatch(/; hit/);
    expect(french.body).toBe('for fr');
  });

  it.each(['constructor', '__proto__', 'tostring'])('selects variants safely when Vary names %s', async (field) => {
    const p = await rig.start((_request, response) => {
      response.writeHead(200, { vary: field, 'cache-control': 'max-age=60' });
      response.end('ok');
    });
    expect((await p.fetch('/v')).status).toBe(200);
    expect((await p.fetch('/v')).headers['cache-status']).toMatch(/; hit/);
  });
});
