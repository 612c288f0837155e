import { existsSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { TieredStore } from '../../proxy/store/tiered.js';
import { bodyFor } from '../helpers/bodies.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { tempDir } from '../helpers/tempdir.js';

/*
 * A cache directory held by a Lacquer in another PID namespace on this host
 * (simulated: a lock file written by hand naming a namespace that is not
 * ours, its heartbeat the file's time). The proxy serves without its disk
 * tier until that lock goes stale, then takes the directory and caches.
 */

const KiB = 1024;
const root = tempDir('lacquer-disk-claim-');
let dirs = 0;
const hasNamespaces = existsSync('/proc/self/ns/pid');
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

async function origin(): Promise<TestOrigin> {
  const started = await startOrigin((request, response) => {
    const length = request.url === '/big' ? 300 * KiB : 10 * KiB;
    response.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'application/octet-stream' });
    response.end(bodyFor(request.url, length));
  });
  open.push(started);
  return started;
}

async function proxy(originUrl: string, dir: string, seen: { errors: unknown[]; logs: string[] }): Promise<TestProxy> {
  const started = await startProxy(originUrl, {
    cacheDir: dir,
    claimRetryMs: 20,
    config: { cache: { memory: { maxObjectSize: 64 * KiB } } as never, log: { level: 'silent' } },
    errors: seen.errors,
    logs: seen.logs,
  });
  open.push(started);
  return started;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Requests name one host, so keys stay the same across proxies on different ports. */
async function get(p: TestProxy, path: string, method: 'GET' | 'POST' = 'GET') {
  const response = await request(`${p.url}${path}`, { method, headers: { host: 'cache.test' } });
  return { status: response.statusCode, cacheStatus: String(response.headers['cache-status'] ?? ''), body: Buffer.from(await response.body.arrayBuffer()) };
}

describe('a cache directory held in another PID namespace', () => {
  it.skipIf(!hasNamespaces)('passes requests to the origin with exact bodies while the lock is fresh, then takes the directory over once it is stale and caches', async () => {
    const o = await origin();
    // An entry the other holder stored, left in the directory.
    const dir = join(root, String(dirs++));
    const earlier = await proxy(o.url, dir, { errors: [], logs: [] });
    expect((await get(earlier, '/left')).cacheStatus).toContain('stored');
    await open.pop()!.close();
    const lock = join(dir, 'lacquer.lock');
    writeFileSync(lock, `99999999 ${hostname()} their-nonce pid:[1]\n`);

    const seen = { errors: [] as unknown[], logs: [] as string[] };
    const p = await proxy(o.url, dir, seen);
    const store = p.store as TieredStore;
    await store.ready;
    expect(store.disk.waitingForDirectory).toBe(true);

    // Small (memory-sized) and large (disk only) objects: every request reaches the origin, answered whole, none stored.
    const before = o.hits();
    for (let i = 0; i < 2; i++) {
      for (const path of ['/small', '/big', '/left']) {
        const answer = await get(p, path);
        expect(answer.status).toBe(200);
        expect(answer.body.equals(bodyFor(path, path === '/big' ? 300 * KiB : 10 * KiB))).toBe(true);
        expect(answer.cacheStatus).toMatch(/fwd=(uri-)?miss/);
        expect(answer.cacheStatus).not.toContain('stored');
      }
    }
    expect(o.hits() - before).toBe(6);

    const then = new Date(Date.now() - 120_000);
    utimesSync(lock, then, then);
    await until(() => !store.disk.waitingForDirectory, 'the directory taken over');
    await store.ready;

    // What the other holder stored is a hit; new responses are stored, and served from the cache after.
    const hitsBefore = o.hits();
    expect((await get(p, '/left')).cacheStatus).toContain('hit');
    expect((await get(p, '/small')).cacheStatus).toContain('stored');
    const small = await get(p, '/small');
    expect(small.cacheStatus).toContain('hit');
    expect(small.body.equals(bodyFor('/small', 10 * KiB))).toBe(true);
    // A large response found no tier to take its stream while the disk tier was off, so its URL was marked hit-for-miss
    // (as when the disk fails): the next fetch is not coalesced, but is stored on disk as it streams.
    const big = await get(p, '/big');
    expect(big.cacheStatus).toContain('detail=hit-for-miss');
    expect(big.body.equals(bodyFor('/big', 300 * KiB))).toBe(true);
    await until(() => [...store.disk.keys()].includes('cache.test/big'), 'the large response stored');
    const bigAgain = await get(p, '/big');
    expect(bigAgain.cacheStatus).toContain('hit');
    expect(bigAgain.body.equals(bodyFor('/big', 300 * KiB))).toBe(true);
    expect(o.hits() - hitsBefore).toBe(2);
    expect(seen.logs.join('\n')).toContain('is free now');
  });

  it.skipIf(!hasNamespaces)('does not serve an entry found at takeover that this proxy invalidated while its disk tier was off', async () => {
    const o = await origin();
    const dir = join(root, String(dirs++));
    const earlier = await proxy(o.url, dir, { errors: [], logs: [] });
    for (const path of ['/changed', '/kept']) expect((await get(earlier, path)).cacheStatus).toContain('stored');
    await open.pop()!.close();
    const lock = join(dir, 'lacquer.lock');
    writeFileSync(lock, `99999999 ${hostname()} their-nonce pid:[1]\n`);

    const p = await proxy(o.url, dir, { errors: [], logs: [] });
    const store = p.store as TieredStore;
    await store.ready;
    expect(store.disk.waitingForDirectory).toBe(true);
    // A POST that succeeds invalidates its URL (RFC 9111 §4.4): the copy on disk is out of date from here on.
    expect((await get(p, '/changed', 'POST')).status).toBe(200);

    const then = new Date(Date.now() - 120_000);
    utimesSync(lock, then, then);
    await until(() => !store.disk.waitingForDirectory, 'the directory taken over');
    await store.ready;

    const before = o.hits('/changed');
    expect((await get(p, '/kept')).cacheStatus).toContain('hit');
    const changed = await get(p, '/changed');
    expect(changed.cacheStatus).not.toContain('hit');
    expect(changed.cacheStatus).toContain('stored');
    expect(o.hits('/changed')).toBe(before + 1);
  });
});
