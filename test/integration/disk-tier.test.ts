import { readdirSync, rmSync, statSync, truncateSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { isFileBody } from '../../proxy/cache/body.js';
import type { TieredStore } from '../../proxy/store/tiered.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { tempDir } from '../helpers/tempdir.js';
import { bodyFor } from '../helpers/bodies.js';

const KiB = 1024;
const root = tempDir('lacquer-disk-it-');
let dirs = 0;
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});


async function origin(headers: Record<string, string> = {}, lengths: Record<string, number> = {}): Promise<TestOrigin> {
  const started = await startOrigin((request, response) => {
    const body = bodyFor(request.url, lengths[request.url] ?? 10 * KiB);
    response.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'application/octet-stream', etag: '"v1"', ...headers });
    response.end(body);
  });
  open.push(started);
  return started;
}

async function proxy(originUrl: string, options: { dir?: string; memoryObject?: number; diskObject?: number; errors?: unknown[]; logs?: string[] } = {}): Promise<TestProxy> {
  const disk = options.diskObject === undefined ? {} : { disk: { maxObjectSize: options.diskObject } };
  const started = await startProxy(originUrl, {
    cacheDir: options.dir ?? join(root, String(dirs++)),
    config: { cache: { memory: { maxObjectSize: options.memoryObject ?? 64 * KiB }, ...disk } as never, log: { level: 'silent' } },
    ...(options.errors && { errors: options.errors }),
    ...(options.logs && { logs: options.logs }),
  });
  open.push(started);
  return started;
}

async function expectNoWholeAnswer(url: string): Promise<void> {
  const outcome = await fetchBytes(url).then(
    (answer) => answer.status,
    () => 'cut',
  );
  expect([502, 'cut']).toContain(outcome);
}

/** Requests name one host, so keys stay the same across proxies on different ports. */
async function fetchBytes(url: string, headers: Record<string, string> = {}) {
  const response = await undiciRequest(url, { headers: { host: 'cache.test', ...headers } });
  const body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, headers: response.headers, body };
}

function keyEndingWith(store: TieredStore, path: string): string {
  return [...store.disk.keys()].find((key) => key.endsWith(path))!;
}

function filesIn(dir: string, suffix: string): string[] {
  const found: string[] = [];
  for (const sub of readdirSync(dir)) {
    if (!/^[0-9a-f]{2}$/.test(sub)) continue;
    for (const name of readdirSync(join(dir, sub))) if (name.endsWith(suffix)) found.push(join(dir, sub, name));
  }
  return found;
}

describe('disk tier in the request flow', () => {
  it('serves an object too large for memory from disk, streamed, without asking the origin again', async () => {
    const o = await origin({}, { '/big': 300 * KiB });
    const p = await proxy(o.url);
    const first = await fetchBytes(`${p.url}/big`);
    expect(first.body.equals(bodyFor('/big', 300 * KiB))).toBe(true);
    const second = await fetchBytes(`${p.url}/big`);
    expect(second.headers['cache-status']).toContain('hit');
    expect(second.body.equals(bodyFor('/big', 300 * KiB))).toBe(true);
    expect(second.headers['content-length']).toBe(String(300 * KiB));
    expect(o.hits('/big')).toBe(1);
    const store = p.store as TieredStore;
    expect(store.memory.stats().entries).toBe(0);
    expect(store.disk.stats().entries).toBe(1);
    expect(isFileBody(store.disk.current(keyEndingWith(store, '/big'), '')!.body)).toBe(true);
  });

  it('stores a chunked response above the memory limit while streaming it, and serves it from disk later', async () => {
    const o = await startOrigin((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600' });
      const body = bodyFor(request.url, 500 * KiB);
      // Written in pieces without Content-Length: the proxy cannot know the size up front.
      for (let offset = 0; offset < body.length; offset += 50 * KiB) response.write(body.subarray(offset, offset + 50 * KiB));
      response.end();
    });
    open.push(o);
    const p = await proxy(o.url);
    const first = await fetchBytes(`${p.url}/stream`);
    expect(first.headers['content-length']).toBeUndefined();
    expect(first.body.equals(bodyFor('/stream', 500 * KiB))).toBe(true);
    const second = await fetchBytes(`${p.url}/stream`);
    expect(second.headers['cache-status']).toContain('hit');
    expect(second.headers['content-length']).toBe(String(500 * KiB));
    expect(second.body.equals(bodyFor('/stream', 500 * KiB))).toBe(true);
    expect(o.hits()).toBe(1);
  });

  it('streams a body of unannounced length past the disk object limit in full, and stores nothing', async () => {
    const o = await startOrigin((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600' });
      const body = bodyFor(request.url, 500 * KiB);
      for (let offset = 0; offset < body.length; offset += 50 * KiB) response.write(body.subarray(offset, offset + 50 * KiB));
      response.end();
    });
    open.push(o);
    const dir = join(root, `limit-${dirs++}`);
    const errors: unknown[] = [];
    const p = await proxy(o.url, { dir, diskObject: 128 * KiB, errors });
    const first = await fetchBytes(`${p.url}/huge`);
    expect(first.body.equals(bodyFor('/huge', 500 * KiB))).toBe(true);
    const second = await fetchBytes(`${p.url}/huge`);
    expect(second.body.equals(bodyFor('/huge', 500 * KiB))).toBe(true);
    expect(second.headers['cache-status']).toContain('fwd=');
    expect(o.hits()).toBe(2);
    expect(p.store.stats().entries).toBe(0);
    expect(String(errors[0])).toContain('maxObjectSize');
    await expect.poll(() => [...filesIn(dir, '.tmp'), ...filesIn(dir, '.body')]).toEqual([]);
  });

  it('answers HEAD and a matching If-None-Match for a disk-only entry from the cache', async () => {
    const o = await origin({}, { '/big': 300 * KiB });
    const p = await proxy(o.url);
    await fetchBytes(`${p.url}/big`);
    const head = await undiciRequest(`${p.url}/big`, { method: 'HEAD', headers: { host: 'cache.test' } });
    await head.body.dump();
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(300 * KiB));
    expect(head.headers['cache-status']).toContain('hit');
    const conditional = await fetchBytes(`${p.url}/big`, { 'if-none-match': '"v1"' });
    expect(conditional.status).toBe(304);
    expect(conditional.body.length).toBe(0);
    expect(o.hits()).toBe(1);
  });

  it('answers ranges with 206 from a disk body and from a memory body', async () => {
    const o = await origin({}, { '/big': 200 * KiB, '/small': 8 * KiB });
    const p = await proxy(o.url);
    await fetchBytes(`${p.url}/big`);
    await fetchBytes(`${p.url}/small`);
    for (const [path, length] of [['/big', 200 * KiB], ['/small', 8 * KiB]] as const) {
      const full = bodyFor(path, length);
      const middle = await fetchBytes(`${p.url}${path}`, { range: 'bytes=1000-1999' });
      expect(middle.status).toBe(206);
      expect(middle.headers['content-range']).toBe(`bytes 1000-1999/${length}`);
      expect(middle.body.equals(full.subarray(1000, 2000))).toBe(true);
      const suffix = await fetchBytes(`${p.url}${path}`, { range: 'bytes=-10' });
      expect(suffix.status).toBe(206);
      expect(suffix.body.equals(full.subarray(length - 10))).toBe(true);
    }
    const store = p.store as TieredStore;
    expect(isFileBody(store.disk.current(keyEndingWith(store, '/big'), '')!.body)).toBe(true);
    expect(Buffer.isBuffer(store.memory.peek(keyEndingWith(store, '/small'))?.[0]?.body)).toBe(true);
    expect(o.hits()).toBe(2);
  });

  it('promotes a small entry found on disk into memory after a restart', async () => {
    const o = await origin();
    const dir = join(root, `promote-${dirs++}`);
    const before = await proxy(o.url, { dir });
    await fetchBytes(`${before.url}/small`);
    await before.close();
    open.splice(open.indexOf(before), 1);

    const after = await proxy(o.url, { dir });
    const store = after.store as TieredStore;
    await store.ready;
    expect(store.memory.stats().entries).toBe(0);
    const fromDisk = await fetchBytes(`${after.url}/small`);
    expect(fromDisk.headers['cache-status']).toContain('hit');
    expect(fromDisk.body.equals(bodyFor('/small', 10 * KiB))).toBe(true);
    await expect.poll(() => store.memory.stats().entries).toBe(1);
    const fromMemory = await fetchBytes(`${after.url}/small`);
    expect(fromMemory.body.equals(bodyFor('/small', 10 * KiB))).toBe(true);
    expect(o.hits()).toBe(1);
  });

  it('leaves no entry and no file when the origin dies in the middle of a large body', async () => {
    const o = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': String(400 * KiB) });
      response.write(Buffer.alloc(150 * KiB, 1));
      setTimeout(() => response.destroy(), 20);
    });
    open.push(o);
    const dir = join(root, `dies-${dirs++}`);
    const p = await proxy(o.url, { dir });
    // Cut mid-body, or, when the origin dies before the first byte is passed on, a clean 502: never a whole-looking 200.
    await expectNoWholeAnswer(`${p.url}/dies`);
    await expect.poll(() => filesIn(dir, '.tmp').length).toBe(0);
    expect(p.store.stats().entries).toBe(0);
    expect(filesIn(dir, '.body')).toEqual([]);
    expect(filesIn(dir, '.meta')).toEqual([]);
    await expectNoWholeAnswer(`${p.url}/dies`);
    expect(o.hits()).toBe(2);
  });

  it('never passes off a damaged body file as complete, drops the entry, and fetches it again', async () => {
    const o = await origin({}, { '/big': 200 * KiB });
    const dir = join(root, `damaged-${dirs++}`);
    const before = await proxy(o.url, { dir });
    await fetchBytes(`${before.url}/big`);
    await before.close();
    open.splice(open.indexOf(before), 1);
    const [bodyFile] = filesIn(dir, '.body');
    truncateSync(bodyFile!, 100 * KiB);

    const logs: string[] = [];
    const after = await proxy(o.url, { dir, logs });
    await (after.store as TieredStore).ready;
    // The headers promise 200 KiB; the stream ends with an error instead of a short body.
    await expect(fetchBytes(`${after.url}/big`)).rejects.toThrow();
    expect(logs.some((line) => line.includes('damaged'))).toBe(true);
    const again = await fetchBytes(`${after.url}/big`);
    expect(again.headers['cache-status']).toContain('fwd=');
    expect(again.body.equals(bodyFor('/big', 200 * KiB))).toBe(true);
    expect(o.hits()).toBe(2);
  });

  it('removes foreign and damaged files at boot with one log line each, and keeps serving', async () => {
    const o = await origin();
    const dir = join(root, `foreign-${dirs++}`);
    const before = await proxy(o.url, { dir });
    await fetchBytes(`${before.url}/kept`);
    await before.close();
    open.splice(open.indexOf(before), 1);
    writeFileSync(join(dir, 'notes.txt'), 'not ours');
    mkdirSync(join(dir, 'ab'), { recursive: true });
    writeFileSync(join(dir, 'ab', `${'a'.repeat(32)}.meta`), 'LQM1 garbage');
    writeFileSync(join(dir, 'ab', `${'b'.repeat(32)}.meta.tmp`), 'half written');

    const logs: string[] = [];
    const after = await proxy(o.url, { dir, logs });
    await (after.store as TieredStore).ready;
    await expect.poll(() => readdirSync(dir).includes('notes.txt')).toBe(false);
    expect(logs.filter((line) => line.includes('notes.txt'))).toHaveLength(1);
    expect(logs.filter((line) => line.includes('a'.repeat(32)))).toHaveLength(1);
    await expect.poll(() => readdirSync(join(dir, 'ab')).length).toBe(0);
    const kept = await fetchBytes(`${after.url}/kept`);
    expect(kept.headers['cache-status']).toContain('hit');
    expect(o.hits()).toBe(1);
  });

  it('passes through and reports the error when the cache directory is replaced by a file', async () => {
    const o = await origin();
    const dir = join(root, `gone-${dirs++}`);
    const errors: unknown[] = [];
    const p = await proxy(o.url, { dir, errors });
    await (p.store as TieredStore).ready;
    rmSync(dir, { recursive: true, force: true });
    writeFileSync(dir, 'a file where the cache directory was');

    for (let i = 0; i < 2; i++) {
      const answer = await fetchBytes(`${p.url}/x`);
      expect(answer.status).toBe(200);
      expect(answer.body.equals(bodyFor('/x', 10 * KiB))).toBe(true);
      expect(answer.headers['cache-status']).not.toContain('stored');
    }
    const big = await fetchBytes(`${p.url}/big-${0}`);
    expect(big.status).toBe(200);
    expect(o.hits()).toBe(3);
    expect(errors.map((error) => (error as NodeJS.ErrnoException).code)).toContain('ENOTDIR');
    expect(statSync(dir).isFile()).toBe(true);
  });

  it('passes through and reports the error when the cache directory is removed', async () => {
    const o = await origin({}, { '/big': 300 * KiB });
    const dir = join(root, `removed-${dirs++}`);
    const errors: unknown[] = [];
    const p = await proxy(o.url, { dir, errors });
    await (p.store as TieredStore).ready;
    rmSync(dir, { recursive: true, force: true });

    expect((await fetchBytes(`${p.url}/small`)).status).toBe(200);
    const big = await fetchBytes(`${p.url}/big`);
    expect(big.body.equals(bodyFor('/big', 300 * KiB))).toBe(true);
    expect((await fetchBytes(`${p.url}/big`)).headers['cache-status']).toContain('fwd=');
    expect(errors.map((error) => (error as NodeJS.ErrnoException).code)).toContain('ENOENT');
    expect(p.store.stats().entries).toBe(0);
  });
});
