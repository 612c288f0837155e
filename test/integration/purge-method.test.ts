import { afterEach, describe, expect, it } from 'vitest';
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

const tagged: OriginHandler = (request, response, count) => {
  response.writeHead(200, { 'cache-control': 'max-age=60, stale-while-revalidate=30', vary: 'accept-encoding', 'surrogate-key': `catalog item${request.url.split('/').pop()}` });
  response.end(`${request.url} #${count}`);
};

async function setup(options: PurgeTestOptions = {}): Promise<PurgeTestProxy> {
  origin = await startOrigin(tagged);
  proxy = await startPurgeProxy(origin.url, options);
  return proxy;
}

async function cached(path: string, host = 'shop.test', encoding = 'gzip'): Promise<boolean> {
  const response = await proxy!.fetch(path, { headers: { host, 'accept-encoding': encoding } });
  return /; hit/.test(String(response.headers['cache-status']));
}

async function fill(paths: readonly string[], hosts: readonly string[], encodings = ['gzip']): Promise<void> {
  for (const path of paths) for (const host of hosts) for (const encoding of encodings) await cached(path, host, encoding);
}

const purgeRequest = (path: string, headers: Record<string, string>) => proxy!.fetch(path, { method: 'PURGE', headers: { host: 'shop.test', ...headers } });

describe('the PURGE method on the proxy listener', () => {
  it('purges every variant of the URL on the request’s host, and never reaches the origin', async () => {
    await setup();
    await fill(['/items/1', '/items/2'], ['shop.test', 'www.shop.test'], ['gzip', 'br']);
    const before = origin!.hits();
    const response = await purgeRequest('/items/1', {});
    expect(response.status).toBe(200);
    expect(JSON.parse(response.body)).toMatchObject({ purged: 2, mode: 'hard' });
    expect(origin!.hits()).toBe(before);
    expect(origin!.requests.some((request) => request.method === 'PURGE')).toBe(false);
    expect(await cached('/items/1', 'shop.test', 'br')).toBe(false);
    expect(await cached('/items/1', 'www.shop.test', 'br')).toBe(true);
    expect(await cached('/items/2', 'shop.test')).toBe(true);
  });

  it('purges the tags named in the tag header instead of the URL', async () => {
    await setup();
    await fill(['/items/1', '/items/2', '/items/3'], ['shop.test']);
    const response = await purgeRequest('/', { 'surrogate-key': 'item1 item3' });
    expect(JSON.parse(response.body).purged).toBe(2);
    expect(await cached('/items/1')).toBe(false);
    expect(await cached('/items/2')).toBe(true);
    expect(await cached('/items/3')).toBe(false);
  });

  it('reads the tag header name from config, and soft purges with Purge-Mode: soft', async () => {
    await setup({ purge: { tagHeader: 'xkey-purge' } });
    await fill(['/items/1'], ['shop.test']);
    const response = await purgeRequest('/', { 'xkey-purge': 'catalog', 'purge-mode': 'soft' });
    expect(JSON.parse(response.body)).toMatchObject({ purged: 1, mode: 'soft' });
    const after = await proxy!.fetch('/items/1', { headers: { host: 'shop.test', 'accept-encoding': 'gzip' } });
    expect(after.body).toBe('/items/1 #1');
    expect(after.headers['cache-status']).toMatch(/detail=stale-while-revalidate/);
  });

  it('reads a tag header named after an Object.prototype member as a plain field: absent, the URL is purged', async () => {
    await setup({ purge: { tagHeader: 'constructor' } });
    await fill(['/items/1', '/items/2'], ['shop.test']);
    const byUrl = await purgeRequest('/items/1', {});
    expect(byUrl.status).toBe(200);
    expect(JSON.parse(byUrl.body)).toMatchObject({ purged: 1, mode: 'hard' });
    expect(await cached('/items/1')).toBe(false);
    expect(await cached('/items/2')).toBe(true);
    const byTag = await purgeRequest('/', { constructor: 'item2' });
    expect(JSON.parse(byTag.body)).toMatchObject({ purged: 1 });
    expect(await cached('/items/2')).toBe(false);
  });

  it('rejects an unknown Purge-Mode with 400', async () => {
    await setup();
    await fill(['/items/1'], ['shop.test']);
    expect((await purgeRequest('/items/1', { 'purge-mode': 'gentle' })).status).toBe(400);
    expect(await cached('/items/1')).toBe(true);
  });

  it('is forwarded like any other method when purge.method is off', async () => {
    await setup({ purge: { method: false } });
    await purgeRequest('/items/1', {});
    expect(origin!.requests.map((request) => request.method)).toEqual(['PURGE']);
  });
});

describe('purge authorization over HTTP', () => {
  const TOKEN = 'a-long-enough-purge-token';

  it('without the token: 401 with a Bearer challenge, and nothing is purged, on both listeners', async () => {
    await setup({ purge: { token: TOKEN } });
    await fill(['/items/1'], ['shop.test']);
    const admin = await postPurge(proxy!, { all: true });
    expect(admin.status).toBe(401);
    expect(admin.headers['www-authenticate']).toBe('Bearer realm="lacquer"');
    expect(JSON.parse(admin.body).message).toMatch(/bearer token is required/);
    const method = await purgeRequest('/items/1', {});
    expect(method.status).toBe(401);
    expect(await cached('/items/1')).toBe(true);
  });

  it('with a wrong token: 403, and nothing is purged', async () => {
    await setup({ purge: { token: TOKEN } });
    await fill(['/items/1'], ['shop.test']);
    expect((await postPurge(proxy!, { all: true }, `${TOKEN}x`)).status).toBe(403);
    expect((await postPurge(proxy!, { all: true }, TOKEN.slice(1))).status).toBe(403);
    expect((await purgeRequest('/items/1', { authorization: 'Bearer wrong-token-of-some-length' })).status).toBe(403);
    expect(await cached('/items/1')).toBe(true);
  });

  it('checks the token before reading the body, so a bad body from a stranger is still 401', async () => {
    await setup({ purge: { token: TOKEN } });
    expect((await postPurge(proxy!, '{"tags": [')).status).toBe(401);
  });

  it('with the right token: purges, from either listener', async () => {
    await setup({ purge: { token: TOKEN } });
    await fill(['/items/1', '/items/2'], ['shop.test']);
    expect(JSON.parse((await postPurge(proxy!, { urls: ['/items/1'] }, TOKEN)).body).purged).toBe(1);
    expect(JSON.parse((await purgeRequest('/items/2', { authorization: `Bearer ${TOKEN}` })).body).purged).toBe(1);
    expect(await cached('/items/1')).toBe(false);
    expect(await cached('/items/2')).toBe(false);
  });

  it('lets a configured address purge without the token', async () => {
    await setup({ purge: { token: TOKEN, allow: ['127.0.0.0/8'] } });
    await fill(['/items/1'], ['shop.test']);
    expect(JSON.parse((await postPurge(proxy!, { all: true })).body).purged).toBe(1);
  });

  it.each([
    ['X-Forwarded-For', { 'x-forwarded-for': '203.0.113.9' }],
    ['Forwarded', { forwarded: 'for=203.0.113.9' }],
    ['Via', { via: '1.1 front' }],
  ])('without a token, refuses a loopback request that came through another proxy (%s), on both listeners', async (_name, headers) => {
    await setup();
    await fill(['/items/1'], ['shop.test']);
    const method = await purgeRequest('/items/1', headers);
    expect(method.status).toBe(403);
    expect(JSON.parse(method.body).message).toMatch(/came through another proxy/);
    const admin = await proxy!.admin('/purge', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ all: true }) });
    expect(admin.status).toBe(403);
    expect(await cached('/items/1')).toBe(true);
    // The same request straight from loopback still may.
    expect((await purgeRequest('/items/1', {})).status).toBe(200);
  });
});
