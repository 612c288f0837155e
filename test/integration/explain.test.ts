import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyRequest } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { loopbackOnly, registerObservabilityRoutes } from '../../metrics/admin-routes.js';
import type { ExplainReport } from '../../metrics/explain.js';
import { startLacquer, type RunningLacquer } from '../../proxy/main.js';
import { MemoryStore } from '../../proxy/store/memory.js';
import { TestClock } from '../helpers/clock.js';
import { wholeLacquerConfig } from '../helpers/lacquer.js';
import { startOrigin, type OriginHandler, type TestOrigin } from '../helpers/origin.js';
import { fetchText } from '../helpers/proxy.js';

let origin: TestOrigin | undefined;
let lacquer: RunningLacquer | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
let clock: TestClock;

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  await lacquer?.close();
  await origin?.close();
  lacquer = undefined;
  origin = undefined;
});

async function start(handler: OriginHandler): Promise<RunningLacquer> {
  clock = new TestClock();
  origin = await startOrigin(handler, { clock: clock.now });
  // The memory tier alone: these tests count per-tier figures.
  const config = wholeLacquerConfig(origin.url);
  lacquer = await startLacquer(config, { clock: clock.now });
  return lacquer;
}

async function explainUrl(url: string, headers: string[] = []): Promise<ExplainReport> {
  const query = new URLSearchParams({ url });
  for (const header of headers) query.append('header', header);
  const answer = await fetchText(`${lacquer!.adminUrl}/explain?${query}`);
  expect(answer.status).toBe(200);
  return JSON.parse(answer.body) as ExplainReport;
}

describe('GET /explain', () => {
  it('describes a stored URL: key, age, lifetime, stale windows, tags, tier, and the hit it would be', async () => {
    const l = await start((_request, response) => {
      response.writeHead(200, {
        'cache-control': 'max-age=100, stale-while-revalidate=30, stale-if-error=600',
        etag: '"v1"',
        'surrogate-key': 'product-7 catalogue',
      });
      response.end('a product');
    });
    expect((await fetchText(`${l.proxyUrl}/products/7?b=2&a=1`)).status).toBe(200);
    clock.advance(40);

    const report = await explainUrl(`${l.proxyUrl}/products/7?a=1&b=2`);
    const host = new URL(l.proxyUrl).host;
    expect(report.key).toBe(`${host}/products/7?a=1&b=2`);
    expect(report.decision).toMatchObject({ kind: 'hit', outcome: 'hit', variant: 0 });
    expect(report.decision.why).toContain('fresh for another 60s');
    expect(report.variants).toHaveLength(1);
    expect(report.variants[0]).toMatchObject({
      tier: 'memory',
      variant: '',
      matchesRequest: true,
      status: 200,
      ageSeconds: 40,
      freshnessLifetimeSeconds: 100,
      ttlSeconds: 60,
      fresh: true,
      staleWhileRevalidateSeconds: 90,
      staleIfErrorSeconds: 660,
      validators: { etag: '"v1"', lastModified: null },
      cacheControl: 'max-age=100, stale-while-revalidate=30, stale-if-error=600',
      tags: ['product-7', 'catalogue'],
    });
    // Explaining is read-only: the origin saw only the one request.
    expect(origin!.hits()).toBe(1);
  });

  it('explains stale-while-revalidate, then revalidation with its stale-if-error fallback, as time passes', async () => {
    const l = await start((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=10, stale-while-revalidate=20, stale-if-error=100', etag: '"e"' });
      response.end('x');
    });
    await fetchText(`${l.proxyUrl}/page`);
    clock.advance(15);
    const swr = await explainUrl(`${l.proxyUrl}/page`);
    expect(swr.decision).toMatchObject({ kind: 'stale-while-revalidate', outcome: 'stale' });
    expect(swr.decision.why).toContain('inside stale-while-revalidate for another 15s');
    expect(swr.variants[0]).toMatchObject({ fresh: false, ttlSeconds: -5, staleWhileRevalidateSeconds: 15, staleIfErrorSeconds: 95 });

    clock.advance(20);
    const late = await explainUrl(`${l.proxyUrl}/page`);
    expect(late.decision).toMatchObject({ kind: 'revalidate', outcome: 'revalidated' });
    expect(late.decision.why).toContain('If-None-Match');
    expect(late.decision.why).toContain('stale entry is served for another 75s');
    expect(origin!.hits()).toBe(1);
  });

  it('uses the request headers given, so a Vary mismatch and an Authorization header are explained', async () => {
    const l = await start((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' });
      response.end('bonjour');
    });
    await fetchText(`${l.proxyUrl}/greeting`, { headers: { 'accept-language': 'fr' } });

    const french = await explainUrl(`${l.proxyUrl}/greeting`, ['Accept-Language: fr']);
    expect(french.decision).toMatchObject({ kind: 'hit', variant: 0 });
    expect(french.variants[0]).toMatchObject({ vary: ['accept-language'], variant: 'accept-language=fr\n', matchesRequest: true });

    const german = await explainUrl(`${l.proxyUrl}/greeting`, ['Accept-Language: de']);
    expect(german.decision).toMatchObject({ kind: 'miss', outcome: 'miss', variant: null });
    expect(german.decision.why).toContain('none matching');
    expect(german.variants[0]!.matchesRequest).toBe(false);

    const authorized = await explainUrl(`${l.proxyUrl}/greeting`, ['Accept-Language: fr', 'Authorization: Bearer x']);
    expect(authorized.decision.kind).toBe('miss');
    expect(authorized.decision.why).toContain('Authorization');
  });

  it('explains a URL nothing is stored for', async () => {
    const l = await start((_request, response) => void response.end());
    const report = await explainUrl(`${l.proxyUrl}/never`);
    expect(report.variants).toEqual([]);
    expect(report.decision).toMatchObject({ kind: 'miss', outcome: 'miss', variant: null });
    expect(report.decision.why).toContain('nothing is stored');
    expect(origin!.hits()).toBe(0);
  });

  it('answers 400 for a missing or malformed url or header', async () => {
    const l = await start((_request, response) => void response.end());
    expect((await fetchText(`${l.adminUrl}/explain`)).status).toBe(400);
    expect((await fetchText(`${l.adminUrl}/explain?url=/path-without-host`)).status).toBe(400);
    expect((await fetchText(`${l.adminUrl}/explain?url=ftp://x/y`)).status).toBe(400);
    const badHeader = await fetchText(`${l.adminUrl}/explain?url=http://x/y&header=no-colon`);
    expect(badHeader.status).toBe(400);
    expect(JSON.parse(badHeader.body).error).toContain('header=Name: value');
    const withHost = await fetchText(`${l.adminUrl}/explain?url=/y&host=example.test`);
    expect(JSON.parse(withHost.body).key).toBe('example.test/y');
  });

  it('refuses clients the injected authorize function rejects', async () => {
    const app = Fastify();
    const seen: string[] = [];
    const store = new MemoryStore({ maxSize: 1 << 20, maxVariants: 4, clock: Date.now });
    registerObservabilityRoutes(app, {
      explain: {
        store,
        tier: 'memory',
        key: defaults().key,
        honorRequestCacheControl: true,
        clock: Date.now,
        authorize: (request: FastifyRequest) => {
          seen.push(String(request.headers['authorization']));
          return request.headers['authorization'] === 'Bearer right';
        },
      },
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => app.close());
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/explain?url=http://x/y`;
    expect((await fetchText(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(403);
    expect((await fetchText(url, { headers: { authorization: 'Bearer right' } })).status).toBe(200);
    expect(seen).toEqual(['Bearer wrong', 'Bearer right']);
    // Without a registry, /metrics is not served.
    expect((await fetchText(url.replace(/\/explain.*/, '/metrics'))).status).toBe(404);
  });

  it('defaults to loopback clients only', () => {
    const from = (remoteAddress: string) => ({ socket: { remoteAddress } }) as unknown as FastifyRequest;
    expect(loopbackOnly(from('127.0.0.1'))).toBe(true);
    expect(loopbackOnly(from('::1'))).toBe(true);
    expect(loopbackOnly(from('::ffff:127.0.0.1'))).toBe(true);
    expect(loopbackOnly(from('10.0.0.8'))).toBe(false);
    expect(loopbackOnly(from('::ffff:192.168.1.4'))).toBe(false);
  });
});
