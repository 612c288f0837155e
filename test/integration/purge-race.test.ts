import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { postPurge, startPurgeProxy, type PurgeTestProxy } from '../helpers/purge-proxy.js';
import type { TestResponse } from '../helpers/proxy.js';
import type { Entry } from '../../proxy/cache/entry.js';

/**
 * The invalidation race: a fetch for a key is under way at the origin when
 * a purge arrives. The response it brings back is from before the purge and
 * must not be stored after it, or the purge would be silently undone.
 */

let origin: TestOrigin | undefined;
let proxy: PurgeTestProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  await origin?.close();
  proxy = undefined;
  origin = undefined;
});

/** An origin whose first answer is held until released; later answers come at once. */
async function heldOrigin(cacheControl = 'max-age=60'): Promise<{ release: () => void }> {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  origin = await startOrigin(async (_request, response, count) => {
    if (count === 1) await gate;
    response.writeHead(200, { 'cache-control': cacheControl, 'surrogate-key': 'race-tag', etag: `"v${count}"` });
    response.end(count === 1 ? 'before the purge' : 'after the purge');
  });
  proxy = await startPurgeProxy(origin.url);
  return { release };
}

async function originSaw(count: number): Promise<void> {
  while (origin!.hits() < count) await new Promise((resolve) => setTimeout(resolve, 5));
}

/** Starts a miss, purges while the origin holds it, then releases it; answers the held response. */
async function purgeDuringFetch(body: unknown): Promise<TestResponse> {
  const { release } = await heldOrigin();
  const inFlight = proxy!.fetch('/race/item');
  await originSaw(1);
  const purge = await postPurge(proxy!, body);
  expect(purge.status).toBe(200);
  release();
  return inFlight;
}

describe('a purge racing an origin fetch', () => {
  it('without a purge, the held response is stored (the control)', async () => {
    const { release } = await heldOrigin();
    const inFlight = proxy!.fetch('/race/item');
    await originSaw(1);
    release();
    expect((await inFlight).headers['cache-status']).toMatch(/; stored/);
    expect((await proxy!.fetch('/race/item')).body).toBe('before the purge');
    expect(origin!.hits()).toBe(1);
  });

  const kinds: [string, unknown][] = [
    ['by URL', { urls: ['/race/item'] }],
    ['by tag', { tags: ['race-tag'] }],
    ['by prefix', { prefixes: ['/race/'] }],
    ['of everything', { all: true }],
    ['soft, by tag', { tags: ['race-tag'], soft: true }],
  ];
  for (const [name, body] of kinds) {
    it(`a purge ${name} keeps the response fetched before it out of the cache`, async () => {
      const held = await purgeDuringFetch(body);
      // The client that asked still gets its answer; it is just not kept.
      expect(held.body).toBe('before the purge');
      expect(held.headers['cache-status']).not.toMatch(/; stored/);
      const next = await proxy!.fetch('/race/item');
      expect(next.body).toBe('after the purge');
      expect(origin!.hits()).toBe(2);
      expect((await proxy!.fetch('/race/item')).body).toBe('after the purge');
      expect(origin!.hits()).toBe(2);
    });
  }

  it('a PURGE request for the URL keeps the response fetched before it out of the cache', async () => {
    const { release } = await heldOrigin();
    const inFlight = proxy!.fetch('/race/item');
    await originSaw(1);
    const purge = await proxy!.fetch('/race/item', { method: 'PURGE' });
    expect(purge.status).toBe(200);
    release();
    expect((await inFlight).headers['cache-status']).not.toMatch(/; stored/);
    expect((await proxy!.fetch('/race/item')).body).toBe('after the purge');
    expect(origin!.hits()).toBe(2);
  });

  it('a request arriving after the purge does not take the answer of a fetch that started before it', async () => {
    const { release } = await heldOrigin();
    const first = proxy!.fetch('/race/item');
    await originSaw(1);
    await postPurge(proxy!, { tags: ['race-tag'] });
    // The second request reaches the proxy while the first fetch is still held, so it finds that fetch under way.
    const port = Number(new URL(proxy!.url).port);
    let arrived = false;
    const onStart = (message: unknown): void => {
      if ((message as { request: IncomingMessage }).request.socket.localPort === port) arrived = true;
    };
    subscribe('http.server.request.start', onStart);
    const second = proxy!.fetch('/race/item');
    while (!arrived) await new Promise((resolve) => setTimeout(resolve, 5));
    unsubscribe('http.server.request.start', onStart);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(origin!.hits()).toBe(1);
    release();
    expect((await first).body).toBe('before the purge');
    expect((await second).body).toBe('after the purge');
    expect(origin!.hits()).toBe(2);
    expect((await proxy!.fetch('/race/item')).body).toBe('after the purge');
    expect(origin!.hits()).toBe(2);
  });

  it('a purge of other things does not stop the response being stored', async () => {
    const held = await purgeDuringFetch({ tags: ['another-tag'], urls: ['/race/other'], prefixes: ['/elsewhere/'] });
    expect(held.headers['cache-status']).toMatch(/; stored/);
    expect((await proxy!.fetch('/race/item')).body).toBe('before the purge');
    expect(origin!.hits()).toBe(1);
  });

  it('a revalidation under way when a tag is purged does not freshen the entry', async () => {
    // The stale entry is revalidated with If-None-Match; the 304 is held until after the purge.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    origin = await startOrigin(async (request, response, count) => {
      if (count === 2) {
        await gate;
        response.writeHead(304, { 'cache-control': 'max-age=60', etag: '"v1"' });
        response.end();
        return;
      }
      response.writeHead(200, { 'cache-control': 'max-age=0', 'surrogate-key': 'race-tag', etag: `"v${count}"` });
      response.end(`version ${count}`);
    });
    proxy = await startPurgeProxy(origin.url);
    await proxy.fetch('/race/item');
    const revalidating = proxy.fetch('/race/item');
    await originSaw(2);
    expect(origin.requests[1]!.headers['if-none-match']).toBe('"v1"');
    await postPurge(proxy, { tags: ['race-tag'] });
    release();
    expect((await revalidating).body).toBe('version 1');
    expect((await proxy.fetch('/race/item')).body).toBe('version 3');
  });

  it('a purge that runs while the store is still writing the entry (a slow disk) is not undone when the write lands', async () => {
    let writing!: () => void;
    const writeStarted = new Promise<void>((resolve) => (writing = resolve));
    let finishWrite!: () => void;
    const writeGate = new Promise<void>((resolve) => (finishWrite = resolve));
    origin = await startOrigin((_request, response, count) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'surrogate-key': 'race-tag' });
      response.end(`version ${count}`);
    });
    let slowWrites = 1;
    proxy = await startPurgeProxy(origin.url, {
      wrapStore: (memory) => ({
        get: (key) => memory.get(key),
        set: async (entry) => {
          if (slowWrites-- > 0) {
            writing();
            await writeGate;
          }
          return memory.set(entry);
        },
        delete: (key) => memory.delete(key),
        deleteVariant: (entry: Entry) => memory.deleteVariant(entry),
        keys: () => memory.keys(),
        sweep: (now) => memory.sweep(now),
        stats: () => memory.stats(),
        close: () => memory.close(),
      }),
    });
    const first = proxy.fetch('/race/item');
    await writeStarted;
    expect((await postPurge(proxy, { tags: ['race-tag'] })).status).toBe(200);
    finishWrite();
    expect((await first).body).toBe('version 1');
    expect((await proxy.fetch('/race/item')).body).toBe('version 2');
  });

  /** A stale entry (stale-if-error allowed) whose revalidation the origin holds, then answers 503; `purge` runs meanwhile. */
  async function failedRevalidationAfter(purge: unknown): Promise<TestResponse> {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    origin = await startOrigin(async (_request, response, count) => {
      if (count === 2) {
        await gate;
        response.writeHead(503);
        response.end('origin down');
        return;
      }
      response.writeHead(200, { 'cache-control': 'max-age=0, stale-if-error=600', 'surrogate-key': 'race-tag', etag: `"v${count}"` });
      response.end(`version ${count}`);
    });
    proxy = await startPurgeProxy(origin.url);
    await proxy.fetch('/race/item');
    const revalidating = proxy.fetch('/race/item');
    await originSaw(2);
    await postPurge(proxy, purge);
    release();
    return revalidating;
  }

  it('an entry purged while its revalidation is under way is not served as stale-if-error afterwards', async () => {
    const answer = await failedRevalidationAfter({ urls: ['/race/item'] });
    expect(answer.body).not.toBe('version 1');
    expect(answer.status).toBe(503);
  });

  it('a soft purge still lets stale-if-error protect a failing origin (the point of soft purges)', async () => {
    const answer = await failedRevalidationAfter({ tags: ['race-tag'], soft: true });
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('version 1');
  });
});
