import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import type { Config } from '../../config/types.js';
import { requestChannel, type RequestEvent } from '../../proxy/events.js';
import { buildProxyServer } from '../../proxy/server.js';
import { MemoryStore } from '../../proxy/store/memory.js';
import { TieredStore } from '../../proxy/store/tiered.js';
import { Origin } from '../../proxy/upstream/origin.js';
import { TestClock } from '../helpers/clock.js';
import { startOrigin, type OriginHandler, type TestOrigin } from '../helpers/origin.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * The fast hit path (proxy/fast-hit.ts) must answer exactly as the flow
 * would, and leave everything else to it. Two listeners share one store and
 * one clock: one with the fast path, one without, so the same stored entry
 * is answered both ways and the raw bytes compared.
 */

interface Pair {
  readonly fast: string;
  readonly general: string;
  /** Requests that reached Fastify on the fast listener (its onRequest hook). */
  readonly reachedFastify: () => number;
  readonly clock: TestClock;
  readonly store: MemoryStore | TieredStore;
  /** Starts closing the fast listener (the app stays on the list of things closed after the test). */
  readonly closeFast: () => Promise<void>;
  readonly fastListening: () => boolean;
}

let origin: TestOrigin | undefined;
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await origin?.close();
  origin = undefined;
});

async function setup(handler: OriginHandler, options: { cacheDir?: string; config?: (config: Config) => void } = {}): Promise<Pair> {
  const clock = new TestClock();
  origin = await startOrigin(handler, { clock: clock.now });
  const config = defaults();
  config.origin.url = origin.url;
  options.config?.(config);
  const store =
    options.cacheDir === undefined
      ? new MemoryStore({ maxSize: config.cache.memory.maxSize, maxVariants: config.cache.maxVariants, clock: clock.now })
      : new TieredStore({
          memory: config.cache.memory,
          disk: { dir: options.cacheDir, maxSize: config.cache.disk.maxSize, maxObjectSize: config.cache.disk.maxObjectSize },
          maxVariants: config.cache.maxVariants,
          clock: clock.now,
        });
  const upstream = new Origin(origin.url, config.origin);
  closers.push(async () => {
    await upstream.close();
    await store.close();
  });
  let reached = 0;
  let fastApp: ReturnType<typeof buildProxyServer>['app'] | undefined;
  const listen = async (fastHits: boolean): Promise<string> => {
    const { app } = buildProxyServer({ config, store, origin: upstream, clock: clock.now, random: () => 0.5, fastHits });
    if (fastHits) {
      fastApp = app;
      app.addHook('onRequest', (_request, _reply, done) => {
        reached++;
        done();
      });
    }
    await app.listen({ host: '127.0.0.1', port: 0 });
    closers.push(() => app.close());
    return `127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  };
  const fast = await listen(true);
  const general = await listen(false);
  return { fast, general, reachedFastify: () => reached, clock, store, closeFast: () => fastApp!.close(), fastListening: () => fastApp!.server.listening };
}

/** One request on its own connection, returning the raw response (status line, header lines in order, body). */
function raw(hostPort: string, text: string): Promise<string> {
  const [host, port] = hostPort.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), host, () => socket.write(text));
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

function get(path: string, extra = '', method = 'GET'): string {
  return `${method} ${path} HTTP/1.1\r\nHost: example.test\r\n${extra}Connection: close\r\n\r\n`;
}

const cacheable = (body: string, extra: Record<string, string | string[]> = {}): OriginHandler => (_request, response) => {
  response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=100', etag: '"v1"', 'x-origin': 'yes', ...extra });
  response.end(body);
};

describe('the fast hit path', () => {
  it('answers a fresh memory hit with exactly the bytes the general path sends, for GET and HEAD', async () => {
    const pair = await setup(cacheable('hello from the origin', { link: ['</a.css>; rel=preload', '</b.js>; rel=preload'] }));
    const fill = await raw(pair.general, get('/page'));
    expect(fill).toMatch(/^HTTP\/1\.1 200/);
    expect(fill).toContain('lacquer; fwd=uri-miss; fwd-status=200; stored');
    pair.clock.advance(7);

    const before = pair.reachedFastify();
    for (const method of ['GET', 'HEAD']) {
      const general = await raw(pair.general, get('/page', '', method));
      const fast = await raw(pair.fast, get('/page', '', method));
      expect(fast).toBe(general);
      expect(fast).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(fast).toContain('\r\nage: 7\r\n');
      expect(fast).toContain('\r\ncache-status: lacquer; hit; ttl=93\r\n');
      expect(fast).toContain('\r\nlink: </a.css>; rel=preload\r\nlink: </b.js>; rel=preload\r\n');
      if (method === 'GET') expect(fast.endsWith('\r\n\r\nhello from the origin')).toBe(true);
      else expect(fast.endsWith('\r\n\r\n')).toBe(true);
    }
    // Neither fast answer went through Fastify; the origin was asked once, for the fill.
    expect(pair.reachedFastify()).toBe(before);
    expect(origin!.hits('/page')).toBe(1);
  });

  it('answers the same bytes as the general path for an entry with a Vary variant', async () => {
    const pair = await setup((request, response) => {
      const lang = request.headers['accept-language'] === 'fr' ? 'fr' : 'en';
      response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', vary: 'Accept-Language', 'content-language': lang });
      response.end(lang === 'fr' ? 'bonjour' : 'hello');
    });
    await raw(pair.general, get('/greet', 'Accept-Language: fr\r\n'));
    await raw(pair.general, get('/greet', 'Accept-Language: en\r\n'));
    const before = pair.reachedFastify();
    const fr = await raw(pair.fast, get('/greet', 'Accept-Language: fr\r\n'));
    expect(fr).toBe(await raw(pair.general, get('/greet', 'Accept-Language: fr\r\n')));
    expect(fr.endsWith('bonjour')).toBe(true);
    const en = await raw(pair.fast, get('/greet', 'Accept-Language: en\r\n'));
    expect(en.endsWith('hello')).toBe(true);
    expect(pair.reachedFastify()).toBe(before);
    expect(origin!.hits('/greet')).toBe(2);
  });

  it('leaves every request it cannot answer to the general path, which answers it as before', async () => {
    const pair = await setup((request, response) => {
      if (request.method === 'POST') {
        response.writeHead(204);
        response.end();
        return;
      }
      cacheable('0123456789')(request, response, 0);
    });
    await raw(pair.fast, get('/item'));
    await raw(pair.fast, get('/js/item'));
    const cases: { request: string; expect: RegExp }[] = [
      { request: get('/item', 'If-None-Match: "v1"\r\n'), expect: /^HTTP\/1\.1 304/ },
      { request: get('/item', 'If-Modified-Since: Thu, 01 Jan 2099 00:00:00 GMT\r\n'), expect: /^HTTP\/1\.1 (200|304)/ },
      { request: get('/item', 'Range: bytes=0-3\r\n'), expect: /^HTTP\/1\.1 206[^]*\r\n\r\n0123$/ },
      { request: get('/item', 'Authorization: Bearer x\r\n'), expect: /^HTTP\/1\.1 200/ },
      { request: get('/item', 'Cache-Control: max-age=1000\r\n'), expect: /cache-status: lacquer; hit/ },
      { request: get('/item', 'Pragma: no-cache\r\n'), expect: /^HTTP\/1\.1 200/ },
      // A Host the flow refuses, and fields the origin never receives (stripped, or named in Connection), are the flow's.
      // example.test/js + /item names the key of /js/item, stored above: the fast path must not answer it from there.
      { request: `GET /item HTTP/1.1\r\nHost: example.test/js\r\nConnection: close\r\n\r\n`, expect: /^HTTP\/1\.1 400/ },
      { request: get('/item', 'X-Forwarded-Host: elsewhere.test\r\n'), expect: /cache-status: lacquer; hit/ },
      { request: get('/item', 'Accept-Language: fr\r\nConnection: close, accept-language\r\n'), expect: /cache-status: lacquer; hit/ },
      { request: get('/other'), expect: /cache-status: lacquer; fwd=uri-miss/ },
      { request: get('/item', '', 'OPTIONS'), expect: /cache-status: lacquer; fwd=method/ },
      // Last: these two are unsafe methods, which invalidate /item (RFC 9111 §4.4).
      { request: `POST /item HTTP/1.1\r\nHost: example.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`, expect: /^HTTP\/1\.1 204/ },
      { request: get('/item', '', 'PURGE'), expect: /cache-status: lacquer; fwd=method/ },
    ];
    for (const [index, { request, expect: pattern }] of cases.entries()) {
      const before = pair.reachedFastify();
      const answer = await raw(pair.fast, request);
      expect(answer, `case ${index}`).toMatch(pattern);
      expect(pair.reachedFastify(), `case ${index} reaches Fastify`).toBe(before + 1);
    }
  });

  it('leaves a stale entry to the general path, which revalidates it', async () => {
    const pair = await setup(cacheable('old'));
    await raw(pair.fast, get('/s'));
    pair.clock.advance(101);
    const before = pair.reachedFastify();
    const answer = await raw(pair.fast, get('/s'));
    expect(pair.reachedFastify()).toBe(before + 1);
    expect(answer).toContain('fwd=stale');
    expect(origin!.hits('/s')).toBe(2);
  });

  it('answers an entry without a Content-Type itself, with the bytes the general path sends: neither writes one in', async () => {
    const pair = await setup((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end('bytes');
    });
    await raw(pair.fast, get('/untyped'));
    const before = pair.reachedFastify();
    const fast = await raw(pair.fast, get('/untyped'));
    expect(pair.reachedFastify()).toBe(before);
    expect(fast).toBe(await raw(pair.general, get('/untyped')));
    expect(fast).toContain('cache-status: lacquer; hit');
    expect(fast.toLowerCase()).not.toContain('content-type');
  });

  it('answers an entry filled from a chunked answer with its length, as the general path does', async () => {
    const pair = await setup((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
      response.write('by');
      response.end('tes');
    });
    await raw(pair.fast, get('/chunked'));
    const before = pair.reachedFastify();
    const fast = await raw(pair.fast, get('/chunked'));
    expect(pair.reachedFastify()).toBe(before);
    expect(fast).toBe(await raw(pair.general, get('/chunked')));
    expect(fast).toContain('cache-status: lacquer; hit');
    expect(fast).toContain('\r\ncontent-length: 5\r\n');
  });

  it('publishes the same request event for a fast hit as the general path does', async () => {
    const pair = await setup(cacheable('evented'));
    await raw(pair.general, get('/e'));
    const events: RequestEvent[] = [];
    const listener = (message: unknown) => events.push(message as RequestEvent);
    subscribe(requestChannel.name, listener);
    try {
      await raw(pair.general, get('/e'));
      await raw(pair.fast, get('/e'));
      // The fast path reuses one header list per entry: an answer read later must still show its own Age.
      pair.clock.advance(5);
      await raw(pair.fast, get('/e', '', 'HEAD'));
    } finally {
      unsubscribe(requestChannel.name, listener);
    }
    expect(events).toHaveLength(3);
    const [general, fast, head] = events as [RequestEvent, RequestEvent, RequestEvent];
    for (const event of [general, fast, head]) {
      expect(event.outcome).toBe('hit');
      expect(event.status).toBe(200);
      expect(event.url).toBe('/e');
      expect(event.request.headers['host']).toBe('example.test');
      expect(event.durationMs).toBeGreaterThanOrEqual(0);
    }
    expect(fast.delivery.headers).toEqual(general.delivery.headers);
    expect(head.delivery.headers).toEqual({ ...general.delivery.headers, age: '5', 'cache-status': 'lacquer; hit; ttl=95' });
    expect(fast.delivery.body).toEqual(Buffer.from('evented'));
    expect(fast.request.clientIp).toBe(general.request.clientIp);
    expect(head.method).toBe('HEAD');
    expect(head.delivery.body).toBeNull();
  });

  it('leaves a key whose body is only on disk to the general path, and answers it fast once it is in memory', async () => {
    const pair = await setup(cacheable('on disk and in memory'), { cacheDir: tempDir() });
    await raw(pair.fast, get('/d'));
    const tiered = pair.store as TieredStore;
    // Memory lets go of its copy; the disk still holds the entry.
    tiered.memory.delete('example.test/d');
    let before = pair.reachedFastify();
    const fromDisk = await raw(pair.fast, get('/d'));
    expect(pair.reachedFastify()).toBe(before + 1);
    expect(fromDisk.endsWith('on disk and in memory')).toBe(true);
    // The disk hit promotes the body to memory in the background; later hits are fast.
    await expect.poll(() => tiered.memory.peek('example.test/d')?.length ?? 0, { timeout: 10_000 }).toBe(1);
    before = pair.reachedFastify();
    const fast = await raw(pair.fast, get('/d'));
    expect(pair.reachedFastify()).toBe(before);
    expect(fast).toBe(await raw(pair.general, get('/d')));
    expect(origin!.hits('/d')).toBe(1);
  });
});

describe('the fast hit path while closing', () => {
  it('steps aside once the listener is closing, so Fastify answers 503 as configured', async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const pair = await setup(async (request, response, count) => {
      if (request.url === '/slow') await released;
      cacheable('closing soon')(request, response, count);
    });
    await raw(pair.fast, get('/c'));
    const [host, port] = pair.fast.split(':') as [string, string];
    const socket = connect(Number(port), host);
    let data = '';
    socket.on('data', (chunk) => (data += chunk.toString('latin1')));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // A request in flight keeps the connection open through the close.
    socket.write('GET /slow HTTP/1.1\r\nHost: example.test\r\n\r\n');
    await expect.poll(() => origin!.hits('/slow'), { timeout: 10_000 }).toBe(1);
    const closed = pair.closeFast();
    await expect.poll(() => pair.fastListening(), { timeout: 10_000 }).toBe(false);
    // A plain hit for a fresh entry, arriving while closing: Fastify's to answer (503), not the fast path's (200).
    socket.write('GET /c HTTP/1.1\r\nHost: example.test\r\n\r\n');
    release();
    await ended;
    await closed;
    expect(data).toMatch(/^HTTP\/1\.1 200 OK[^]*HTTP\/1\.1 503 /);
  });
});
