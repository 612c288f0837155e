import { existsSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { CLAIM_RETRY_ENV } from '../../proxy/store/disk-lock.js';
import type { Config } from '../../config/types.js';
import { startLacquer, type RunningLacquer } from '../../proxy/main.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { fetchText } from '../helpers/proxy.js';

let origin: TestOrigin | undefined;
let lacquer: RunningLacquer | undefined;

afterEach(async () => {
  await lacquer?.close();
  await origin?.close();
  lacquer = undefined;
  origin = undefined;
});

describe('purge in the composed proxy (proxy/main.ts)', () => {
  it('purges by tag over the admin listener and by PURGE on the proxy listener, token required', async () => {
    origin = await startOrigin((request, response, count) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'cache-tag': `all,${request.url.slice(1)}` });
      response.end(`#${count}`);
    });
    const base = defaults();
    const config: Config = {
      ...base,
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      origin: { ...base.origin, url: origin.url },
      purge: { ...base.purge, token: 'main-test-token-0123456789' },
      // The whole stack, the disk tier included, in a directory of its own.
      cache: { ...base.cache, disk: { ...base.cache.disk, path: mkdtempSync(join(tmpdir(), 'lacquer-purge-main-')) } },
      log: { level: 'silent' },
    };
    lacquer = await startLacquer(config);
    const get = (path: string) => fetchText(lacquer!.proxyUrl + path);
    for (const path of ['/a', '/b', '/a', '/b']) await get(path);
    expect(origin.hits()).toBe(2);
    // Tag headers are not shown to clients.
    expect((await get('/a')).headers['cache-tag']).toBeUndefined();

    const denied = await fetchText(`${lacquer.adminUrl}/purge`, { method: 'POST', body: '{"tags":["a"]}' });
    expect(denied.status).toBe(401);
    const purged = await fetchText(`${lacquer.adminUrl}/purge`, { method: 'POST', headers: { authorization: 'Bearer main-test-token-0123456789' }, body: '{"tags":["a"]}' });
    expect(JSON.parse(purged.body).purged).toBe(1);
    const method = await fetchText(`${lacquer.proxyUrl}/b`, { method: 'PURGE', headers: { authorization: 'Bearer main-test-token-0123456789' } });
    expect(JSON.parse(method.body).purged).toBe(1);
    await get('/a');
    await get('/b');
    expect(origin.hits()).toBe(4);
  });

  it('finds tags again after a restart, from the entries the disk tier holds', async () => {
    origin = await startOrigin((request, response, count) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': `all ${request.url.slice(1)}` });
      response.end(`#${count}`);
    });
    const base = defaults();
    const config: Config = {
      ...base,
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      origin: { ...base.origin, url: origin.url },
      log: { level: 'silent' },
      cache: { ...base.cache, disk: { ...base.cache.disk, path: mkdtempSync(join(tmpdir(), 'lacquer-purge-restart-')) } },
    };
    lacquer = await startLacquer(config);
    // One Host throughout: the key names the host, and the listening port changes across restarts.
    const get = (path: string) => fetchText(lacquer!.proxyUrl + path, { headers: { host: 'api.example' } });
    for (const path of ['/p', '/q', '/r']) await get(path);
    await lacquer.close();

    // A new process's worth of state: nothing but the files on disk.
    lacquer = await startLacquer(config);
    const purge = (body: string) => fetchText(`${lacquer!.adminUrl}/purge`, { method: 'POST', body });
    // The index is rebuilt in the background: wait (without asking the origin) until /explain sees every entry.
    for (const path of ['/p', '/q', '/r']) {
      for (let tries = 0; tries < 500; tries++) {
        const explained = await fetchText(`${lacquer.adminUrl}/explain?url=${encodeURIComponent(`http://api.example${path}`)}`);
        if (JSON.parse(explained.body).variants?.length === 1) break;
        await new Promise((done) => setTimeout(done, 10));
      }
    }
    for (const path of ['/p', '/q', '/r']) expect((await get(path)).headers['cache-status']).toContain('hit');
    expect(origin.hits()).toBe(3);
    expect(JSON.parse((await purge('{"tags":["q"]}')).body).purged).toBe(1);
    expect(JSON.parse((await purge('{"tags":["all"]}')).body).purged).toBe(2);
    await get('/q');
    expect(origin.hits()).toBe(4);
  });

  it.skipIf(!existsSync('/proc/self/ns/pid'))('applies a tag purge made while the disk tier waited for its directory to the entries it finds there once it takes it over', { timeout: 60_000 }, async () => {
    origin = await startOrigin((request, response, count) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': `all ${request.url.slice(1)}` });
      response.end(`#${count}`);
    });
    const base = defaults();
    const dir = mkdtempSync(join(tmpdir(), 'lacquer-purge-takeover-'));
    const config: Config = {
      ...base,
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      origin: { ...base.origin, url: origin.url },
      log: { level: 'silent' },
      cache: { ...base.cache, disk: { ...base.cache.disk, path: dir } },
    };
    lacquer = await startLacquer(config);
    const get = (path: string, headers: Record<string, string> = {}) => fetchText(lacquer!.proxyUrl + path, { headers: { host: 'api.example', ...headers } });
    for (const path of ['/p', '/q']) expect((await get(path)).headers['cache-status']).toContain('stored');
    await lacquer.close();

    // The directory is now held by a Lacquer in another PID namespace on this host, its lock fresh.
    const lock = join(dir, 'lacquer.lock');
    writeFileSync(lock, `1 ${hostname()} their-nonce pid:[1]\n`);
    // Its heartbeat, however long this takes on a loaded machine.
    const heartbeat = setInterval(() => utimesSync(lock, new Date(), new Date()), 1_000);
    // Claims every 100 ms rather than every 5 s (an internal setting for tests; read when the disk tier starts).
    process.env[CLAIM_RETRY_ENV] = '100';
    try {
      lacquer = await startLacquer(config);
      // Nothing indexed while the tier is off: the purge finds nothing to remove here.
      expect((await get('/q', { 'cache-control': 'only-if-cached' })).status).toBe(504);
      expect(JSON.parse((await fetchText(`${lacquer.adminUrl}/purge`, { method: 'POST', body: '{"tags":["q"]}' })).body).purged).toBe(0);
    } finally {
      clearInterval(heartbeat);
      delete process.env[CLAIM_RETRY_ENV];
    }

    const longAgo = new Date(Date.now() - 120_000);
    utimesSync(lock, longAgo, longAgo);
    // Claimed again every 100 ms: wait (without asking the origin) until the entry that was not purged is served.
    const deadline = Date.now() + 30_000;
    while ((await get('/p', { 'cache-control': 'only-if-cached' })).status !== 200) {
      if (Date.now() > deadline) throw new Error('the directory was not taken over within 30 s');
      await new Promise((done) => setTimeout(done, 50));
    }
    expect((await get('/p')).headers['cache-status']).toContain('hit');
    // The takeover's scan reaches /q too (a hit on /p says only that /p was read): the purge made meanwhile applies to it, and its metadata file goes.
    while (metaFiles(dir) !== 1) {
      if (Date.now() > deadline) throw new Error(`the purged entry's metadata file was not removed within 30 s (${metaFiles(dir)} left)`);
      await new Promise((done) => setTimeout(done, 50));
    }
    // So the purged one is not served: the file was there, but the purge made meanwhile applied to it.
    const hits = origin.hits();
    const q = await get('/q');
    expect(q.headers['cache-status']).not.toContain('hit');
    expect(q.body).toBe(`#${hits + 1}`);
    expect(origin.hits()).toBe(hits + 1);
  });
});

/** Metadata files in a cache directory (one per stored entry). */
function metaFiles(dir: string): number {
  return readdirSync(dir, { recursive: true }).filter((name) => String(name).endsWith('.meta')).length;
}
