import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { afterEach, describe, expect, it } from 'vitest';
import { purgeChannel, type PurgeEvent } from '../../purge/events.js';
import { startOrigin, type OriginHandler, type TestOrigin } from '../helpers/origin.js';
import { postPurge, startPurgeProxy, type PurgeTestOptions, type PurgeTestProxy } from '../helpers/purge-proxy.js';

let origin: TestOrigin | undefined;
let proxy: PurgeTestProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  await origin?.close();
  proxy = undefined;
  origin = undefined;
});

/** Tags by path; every answer is cacheable for a minute, varies on Accept-Encoding and names its request number. */
const TAGS: Record<string, string> = {
  '/products/1': 'product-1 catalog',
  '/products/2': 'product-2 catalog',
  '/pages/about': 'page',
};

const tagged: OriginHandler = (request, response, count) => {
  const path = request.url.split('?')[0]!;
  const headers: Record<string, string> = { 'cache-control': 'max-age=60', vary: 'accept-encoding', 'content-type': 'text/plain' };
  if (TAGS[path] !== undefined) headers['surrogate-key'] = TAGS[path];
  response.writeHead(200, headers);
  response.end(`${request.url} #${count}`);
};

async function setup(options: PurgeTestOptions = {}, handler: OriginHandler = tagged): Promise<PurgeTestProxy> {
  origin = await startOrigin(handler);
  proxy = await startPurgeProxy(origin.url, options);
  return proxy;
}

/** Fetches a URL on a host with an encoding; answers whether it came from the cache. */
async function cached(path: string, host = 'shop.test', encoding = 'gzip'): Promise<boolean> {
  const response = await proxy!.fetch(path, { headers: { host, 'accept-encoding': encoding } });
  expect(response.status).toBe(200);
  return /; hit/.test(String(response.headers['cache-status']));
}

async function fill(paths: readonly string[], hosts = ['shop.test'], encodings = ['gzip']): Promise<void> {
  for (const path of paths) for (const host of hosts) for (const encoding of encodings) await cached(path, host, encoding);
  for (const path of paths) for (const host of hosts) for (const encoding of encodings) expect(await cached(path, host, encoding), `${host}${path} ${encoding}`).toBe(true);
}

describe('POST /purge on the admin listener', () => {
  it('purges a path on every host, with all its variants', async () => {
    const p = await setup();
    await fill(['/products/1', '/products/2'], ['shop.test', 'www.shop.test'], ['gzip', 'br']);
    const response = await postPurge(p, { urls: ['/products/1'] });
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({ purged: 4, mode: 'hard' });
    expect(typeof JSON.parse(response.body).durationMs).toBe('number');
    for (const host of ['shop.test', 'www.shop.test']) {
      for (const encoding of ['gzip', 'br']) expect(await cached('/products/1', host, encoding)).toBe(false);
      expect(await cached('/products/2', host)).toBe(true);
    }
    expect(origin!.hits('/products/1')).toBe(8);
  });

  it('purges an absolute URL on its own host only, matching the query however it is ordered', async () => {
    const p = await setup();
    await fill(['/search?a=1&b=2'], ['shop.test', 'www.shop.test']);
    const response = await postPurge(p, { urls: ['http://www.shop.test/search?b=2&a=1'] });
    expect(JSON.parse(response.body).purged).toBe(1);
    expect(await cached('/search?a=1&b=2', 'www.shop.test')).toBe(false);
    expect(await cached('/search?a=1&b=2', 'shop.test')).toBe(true);
  });

  it('purges every entry carrying any of the tags, and only those', async () => {
    const p = await setup();
    await fill(['/products/1', '/products/2', '/pages/about', '/untagged'], ['shop.test'], ['gzip', 'br']);
    const response = await postPurge(p, { tags: ['product-1', 'page'] });
    expect(JSON.parse(response.body).purged).toBe(4);
    expect(await cached('/products/1')).toBe(false);
    expect(await cached('/pages/about', 'shop.test', 'br')).toBe(false);
    expect(await cached('/products/2')).toBe(true);
    expect(await cached('/untagged')).toBe(true);
    // The index forgot the purged variants; only the two refetched since are indexed again.
    expect(p.index.variants('page').map((ref) => ref.key)).toEqual(['shop.test/pages/about']);
    expect(p.index.variants('product-1').map((ref) => ref.key)).toEqual(['shop.test/products/1']);
    expect(p.index.variants('catalog')).toHaveLength(3);
  });

  it('purges by path prefix', async () => {
    const p = await setup();
    await fill(['/products/1', '/products/2', '/pages/about']);
    const response = await postPurge(p, { prefixes: ['/products/'] });
    expect(JSON.parse(response.body).purged).toBe(2);
    expect(await cached('/products/1')).toBe(false);
    expect(await cached('/products/2')).toBe(false);
    expect(await cached('/pages/about')).toBe(true);
  });

  it('purges everything', async () => {
    const p = await setup();
    await fill(['/products/1', '/pages/about', '/untagged'], ['shop.test', 'other.test']);
    const response = await postPurge(p, { all: true });
    expect(JSON.parse(response.body).purged).toBe(6);
    expect(p.store.stats().entries).toBe(0);
    expect(p.index.size()).toEqual({ tags: 0, variants: 0, links: 0 });
  });

  it('counts a variant named twice (by URL and by tag) once, hard or soft', async () => {
    const p = await setup();
    await fill(['/products/1', '/products/2']);
    expect(JSON.parse((await postPurge(p, { urls: ['/products/1'], tags: ['catalog'], soft: true })).body).purged).toBe(2);
    // These had no grace, so the soft purge left nothing to serve: a second one finds nothing.
    expect(JSON.parse((await postPurge(p, { tags: ['catalog'], soft: true })).body).purged).toBe(0);
    await fill(['/products/1', '/products/2']);
    expect(JSON.parse((await postPurge(p, { urls: ['/products/1'], tags: ['catalog'] })).body).purged).toBe(2);
  });

  it('answers 0 when nothing matches', async () => {
    const p = await setup();
    expect(JSON.parse((await postPurge(p, { tags: ['nothing'] })).body)).toMatchObject({ purged: 0 });
  });

  it('publishes one event and logs one line per purge', async () => {
    const logs: unknown[] = [];
    const p = await setup({ logs });
    await fill(['/products/1', '/products/2']);
    const events: PurgeEvent[] = [];
    const listener = (message: unknown) => events.push(message as PurgeEvent);
    subscribe(purgeChannel.name, listener);
    try {
      await postPurge(p, { tags: ['catalog'], soft: true });
      await postPurge(p, { urls: ['/x'], prefixes: ['/y/'] });
    } finally {
      unsubscribe(purgeChannel.name, listener);
    }
    // The second request names two kinds, so it is two purges.
    expect(events).toHaveLength(3);
    expect(events[0]).toMatchObject({ kind: 'tag', soft: true, source: 'admin', purged: 2, errors: 0 });
    expect(events[1]).toMatchObject({ kind: 'url', soft: false, purged: 0 });
    expect(events[2]).toMatchObject({ kind: 'prefix', soft: false, purged: 0 });
    for (const event of events) expect(event.durationMs).toBeGreaterThanOrEqual(0);
    const lines = logs.filter((line) => (line as { purge?: unknown }).purge !== undefined);
    expect(lines).toHaveLength(3);
    expect((lines[0] as { msg: string }).msg).toMatch(/^purge tag soft: 2 entries in/);
  });
});

describe('soft purge', () => {
  it('serves the old content as stale while exactly one refresh fetches the new', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const p = await setup({}, async (_request, response, count) => {
      if (count > 1) await gate;
      response.writeHead(200, { 'cache-control': 'max-age=60, stale-while-revalidate=30', 'surrogate-key': 'news', etag: `"v${count}"` });
      response.end(`version ${count}`);
    });
    await p.fetch('/news');
    expect(JSON.parse((await postPurge(p, { tags: ['news'], soft: true })).body)).toMatchObject({ purged: 1, mode: 'soft' });
    const answers = await Promise.all(Array.from({ length: 20 }, () => p.fetch('/news')));
    for (const answer of answers) {
      expect(answer.body).toBe('version 1');
      expect(answer.headers['cache-status']).toMatch(/; hit; .*detail=stale-while-revalidate/);
    }
    while (origin!.hits() < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    release();
    let fresh = await p.fetch('/news');
    while (fresh.body !== 'version 2') fresh = await p.fetch('/news');
    expect(fresh.headers['cache-status']).toMatch(/; hit; ttl=/);
    expect(origin!.hits()).toBe(2);
  });

  it('leaves stale-if-error able to answer when the origin then fails; a hard purge does not', async () => {
    let failing = false;
    const p = await setup({}, (request, response) => {
      if (failing) {
        response.writeHead(503);
        response.end('down');
        return;
      }
      response.writeHead(200, { 'cache-control': 'max-age=60, stale-if-error=600', 'surrogate-key': 'doc' });
      response.end(`content of ${request.url}`);
    });
    await p.fetch('/soft');
    await p.fetch('/hard');
    expect(JSON.parse((await postPurge(p, { urls: ['/soft'], soft: true })).body).purged).toBe(1);
    expect(JSON.parse((await postPurge(p, { urls: ['/hard'] })).body).purged).toBe(1);
    failing = true;
    const soft = await p.fetch('/soft');
    expect(soft.status).toBe(200);
    expect(soft.body).toBe('content of /soft');
    expect(soft.headers['cache-status']).toMatch(/detail=stale-if-error/);
    expect((await p.fetch('/hard')).status).toBe(503);
    expect(origin!.hits('/soft')).toBe(2);
  });
});

describe('bad purge requests', () => {
  it('get 400 with a message naming the problem, and purge nothing', async () => {
    const p = await setup();
    await fill(['/products/1']);
    const cases: [string, RegExp][] = [
      ['{"tags": [', /not valid JSON/],
      ['{"tag": ["product-1"]}', /unknown field "tag"/],
      ['{"tags": []}', /tags: expected at least one/],
      ['{}', /nothing to purge/],
      ['{"urls": ["products/1"]}', /urls\[0\]: expected an absolute http\(s\) URL or a path starting with "\/"/],
      ['', /expected a JSON body/],
    ];
    for (const [body, pattern] of cases) {
      const response = await postPurge(p, body);
      expect(response.status, body).toBe(400);
      expect(JSON.parse(response.body).message, body).toMatch(pattern);
    }
    expect(await cached('/products/1')).toBe(true);
  });

  it('refuses a body over the size limit with 413', async () => {
    const p = await setup({ purge: { maxBodySize: 1024 } });
    const response = await postPurge(p, { tags: Array.from({ length: 200 }, (_, i) => `tag-${i}`) });
    expect(response.status).toBe(413);
  });

  it('accepts JSON sent without a JSON content type, as `curl -d` does', async () => {
    const p = await setup();
    await fill(['/products/1']);
    const response = await p.admin('/purge', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '{"tags":["product-1"]}' });
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body).purged).toBe(1);
  });
});
