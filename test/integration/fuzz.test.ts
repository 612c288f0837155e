import type { ServerResponse } from 'node:http';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom } from '../../scripts/bench/zipf.js';
import { startOrigin, type OriginRequestRecord, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

/**
 * A seeded fuzz run: random but bounded mixes of methods, paths, request
 * headers and origin behaviours (statuses, lifetimes, Vary, cookies,
 * validators, delays, resets mid-body). Whatever happens, the invariants
 * hold: the process stays up, every answer is well formed, and a body the
 * cache returns is one the origin sent for that path and that variant,
 * whole.
 */

const SEED = 0x1acc0e5;
const ITERATIONS = 1_500;
const CONCURRENCY = 8;

const PATHS = ['/a', '/b', '/c?x=1', '/c?x=2', '/d/e', '/tagged', '/big'];
const LANGS = ['', 'en', 'fr', 'de'];
const METHODS = ['GET', 'GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'];
const REQUEST_CACHE_CONTROL = ['', '', '', 'no-cache', 'max-age=0', 'max-stale=30', 'only-if-cached', 'no-store', 'min-fresh=5'];
const RESPONSE_CACHE_CONTROL = ['max-age=60', 'max-age=0', 's-maxage=30, max-age=0', 'no-store', 'private', 'no-cache', 'max-age=1, stale-while-revalidate=30', 'max-age=1, stale-if-error=60', 'public', ''];
const STATUSES = [200, 200, 200, 200, 203, 204, 301, 404, 410, 500, 503];
const BODY_END = '|end';

/** The body the origin sends: names the path and language it answered, and ends with a marker that shows it is whole. */
function originBody(path: string, lang: string, version: number, size: number): string {
  const head = `path=${path}|lang=${lang}|v=${version}|`;
  return head + 'x'.repeat(Math.max(0, size - head.length)) + BODY_END;
}

interface Observation {
  readonly method: string;
  readonly path: string;
  readonly lang: string;
  readonly status: number;
  readonly body: string;
  readonly failed: boolean;
}

let origin: TestOrigin;
let proxy: TestProxy;
const errors: unknown[] = [];
const originRandom = seededRandom(SEED ^ 0x5eed);
let version = 0;

/** Answered plainly, never at random: the check that the proxy is still up must not itself meet a reset. */
const STEADY_PATH = '/steady';

function behave(request: OriginRequestRecord, response: ServerResponse): void | Promise<void> {
  if (request.url === STEADY_PATH) {
    response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
    response.end('up');
    return;
  }
  const pick = <T>(list: readonly T[]): T => list[Math.floor(originRandom() * list.length)]!;
  const path = request.url;
  const lang = String(request.headers['accept-language'] ?? '');
  const status = pick(STATUSES);
  const cacheControl = pick(RESPONSE_CACHE_CONTROL);
  const size = path === '/big' ? 40_000 + Math.floor(originRandom() * 40_000) : Math.floor(originRandom() * 2_000);
  version += 1;
  const body = originBody(path, lang, version, size);
  const headers: Record<string, string> = { vary: 'accept-language', 'content-type': 'text/plain' };
  if (cacheControl !== '') headers['cache-control'] = cacheControl;
  if (originRandom() < 0.3) headers['etag'] = `"v${version % 3}"`;
  if (originRandom() < 0.2) headers['last-modified'] = new Date(Date.now() - 3_600_000).toUTCString();
  if (originRandom() < 0.1) headers['set-cookie'] = `session=${version}`;
  if (path === '/tagged') headers['surrogate-key'] = `t${version % 4} all`;
  const behaviour = originRandom();
  const delay = originRandom() < 0.2 ? Math.floor(originRandom() * 20) : 0;

  const send = () => {
    if (request.headers['if-none-match'] !== undefined && request.headers['if-none-match'] === headers['etag'] && originRandom() < 0.7) {
      response.writeHead(304, { etag: headers['etag']!, 'cache-control': headers['cache-control'] ?? 'max-age=30', vary: 'accept-language' });
      response.end();
      return;
    }
    if (behaviour < 0.05) {
      // Dies mid-body: headers and part of a body, then a reset.
      response.writeHead(status === 204 ? 200 : status, { ...headers, 'content-length': String(body.length) });
      response.write(body.slice(0, Math.floor(body.length / 2)));
      setTimeout(() => response.destroy(), 2);
      return;
    }
    if (behaviour < 0.08) {
      // Dies before answering at all.
      response.destroy();
      return;
    }
    if (status === 204 || status === 304) {
      response.writeHead(status, headers);
      response.end();
      return;
    }
    response.writeHead(status, headers);
    response.end(body);
  };
  if (delay === 0) return send();
  return new Promise<void>((done) => setTimeout(() => (send(), done()), delay));
}

beforeAll(async () => {
  origin = await startOrigin(behave);
  proxy = await startProxy(origin.url, {
    clock: Date.now,
    errors,
    config: { origin: { headersTimeout: 2_000, bodyTimeout: 2_000 }, cache: { memory: { maxSize: 4 * 1024 * 1024, maxObjectSize: 64 * 1024 } } },
  });
});

afterAll(async () => {
  await proxy?.close();
  await origin?.close();
});

async function one(random: () => number): Promise<Observation> {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const method = pick(METHODS);
  const path = pick(PATHS);
  const lang = pick(LANGS);
  const headers: Record<string, string> = {};
  if (lang !== '') headers['accept-language'] = lang;
  const cacheControl = pick(REQUEST_CACHE_CONTROL);
  if (cacheControl !== '') headers['cache-control'] = cacheControl;
  if (random() < 0.15) headers['if-none-match'] = `"v${Math.floor(random() * 3)}"`;
  if (random() < 0.05) headers['authorization'] = 'Bearer someone';
  if (random() < 0.05) headers['x-forwarded-host'] = 'evil.example';
  const body = method === 'POST' || method === 'PUT' ? 'payload' : undefined;
  try {
    const response = await undiciRequest(proxy.url + path, { method: method as 'GET', headers, body });
    const text = await response.body.text();
    return { method, path, lang, status: response.statusCode, body: text, failed: false };
  } catch {
    // A connection cut mid-body (the proxy passing an origin reset through on a streamed answer).
    return { method, path, lang, status: 0, body: '', failed: true };
  }
}

describe('fuzzing the proxy with a fixed seed', () => {
  it(`keeps its invariants over ${ITERATIONS} random requests`, async () => {
    const random = seededRandom(SEED);
    const observations: Observation[] = [];
    let next = 0;
    const worker = async () => {
      while (next < ITERATIONS) {
        next += 1;
        observations.push(await one(random));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    expect(observations.length).toBeGreaterThanOrEqual(ITERATIONS);
    for (const seen of observations) {
      if (seen.failed) continue;
      expect(seen.status).toBeGreaterThanOrEqual(200);
      expect(seen.status).toBeLessThanOrEqual(599);
      if (seen.method === 'HEAD' || seen.body === '' || !seen.body.startsWith('path=')) continue;
      // A body from the origin: it must be for this path and this variant, and whole.
      const expected = `path=${seen.path}|lang=${seen.lang}|`;
      expect(seen.body.startsWith(expected), `${seen.method} ${seen.path} [${seen.lang}] got ${seen.body.slice(0, 40)}`).toBe(true);
      if (seen.status !== 206) expect(seen.body.endsWith(BODY_END), `${seen.path} body is truncated`).toBe(true);
    }
    // The proxy is still up and answering (on a path the origin answers plainly,
    // since any fuzzed path may meet a reset mid-body, which the proxy passes on).
    const after = await undiciRequest(`${proxy.url}${STEADY_PATH}`, { method: 'GET' });
    expect(await after.body.text()).toBe('up');
    expect(after.statusCode).toBe(200);
    // Enough of the run exercised the cache to mean something.
    expect(origin.hits()).toBeLessThan(observations.length);
  }, 120_000);
});
