import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { defaults } from '../config/schema.js';
import type { Config } from '../config/types.js';
import { attachPurge } from '../purge/attach.js';
import { TagIndex } from '../purge/tag-index.js';
import { buildAdminServer } from '../proxy/admin.js';
import type { Entry } from '../proxy/cache/entry.js';
import { buildProxyServer } from '../proxy/server.js';
import { fanOut } from '../proxy/store/fan-out.js';
import { MemoryStore } from '../proxy/store/memory.js';
import { Origin } from '../proxy/upstream/origin.js';

/**
 * Purging one tag that covers 100,000 entries while clients hit another
 * URL: how long the purge takes and what it does to the latency of those
 * hits, sliced (the default) and, for comparison, in one go. Loopback only;
 * each load run is bounded in time.
 *
 *   npx tsc -p tsconfig.json --outDir dist/.bench && node dist/.bench/bench/purge-tag.js [ENTRIES] [SLICE...]
 */

const ENTRIES = Number(process.argv[2] ?? 100_000);
const SLICES = process.argv.length > 3 ? process.argv.slice(3).map(Number) : [256, Number.POSITIVE_INFINITY];
const LOAD_SECONDS = 8;
const PURGE_AFTER_MS = 3_000;

const EMPTY = Buffer.alloc(0);

function entry(key: string, tags: string[], now: number): Entry {
  return {
    key, vary: [], variant: '', status: 200, headers: { 'content-type': 'text/plain', 'content-length': '0' }, body: EMPTY,
    etag: undefined, lastModified: undefined, tags, requestTime: now, responseTime: now, initialAge: 0, storedAt: now,
    freshUntil: now + 3_600_000, staleWhileRevalidateUntil: now + 3_600_000, staleIfErrorUntil: now + 3_600_000, deleteAt: now + 3_600_000,
    noCache: false, mustRevalidate: false, immutable: false, sharedWithAuthorization: false, size: 700,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function runOnce(sliceSize: number): Promise<void> {
  const originServer = createServer((_req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=3600', 'content-type': 'text/plain' });
    res.end('hot');
  });
  await new Promise<void>((resolve) => originServer.listen(0, '127.0.0.1', resolve));
  const originUrl = `http://127.0.0.1:${(originServer.address() as AddressInfo).port}`;

  const base = defaults();
  const config: Config = { ...base, origin: { ...base.origin, url: originUrl } };
  const index = new TagIndex();
  const store = new MemoryStore({ maxSize: config.cache.memory.maxSize, maxVariants: config.cache.maxVariants, clock: Date.now, listener: fanOut([index]) });
  const origin = new Origin(originUrl, config.origin);
  const proxy = buildProxyServer({ config, store, origin, clock: Date.now });
  const admin = buildAdminServer({ origin });
  attachPurge({ config, index, store, invalidations: proxy.flow.invalidations, proxyApp: proxy.app, adminApp: admin, clock: Date.now, sliceSize });
  await proxy.app.listen({ host: '127.0.0.1', port: 0 });
  await admin.listen({ host: '127.0.0.1', port: 0 });
  const proxyUrl = `http://127.0.0.1:${(proxy.app.server.address() as AddressInfo).port}`;
  const adminUrl = `http://127.0.0.1:${(admin.server.address() as AddressInfo).port}`;

  const now = Date.now();
  for (let i = 0; i < ENTRIES; i++) store.set(entry(`127.0.0.1/items/${i}`, ['big', `item-${i}`], now));
  await (await request(`${proxyUrl}/hot`)).body.text();

  const loadScript = fileURLToPath(new URL('./purge-load.js', import.meta.url));
  const child = spawn(process.execPath, [loadScript, `${proxyUrl}/hot`, String(LOAD_SECONDS), '8'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));

  await new Promise((resolve) => setTimeout(resolve, PURGE_AFTER_MS));
  const t0 = Date.now();
  const response = await request(`${adminUrl}/purge`, { method: 'POST', body: '{"tags":["big"]}' });
  const answer = (await response.body.json()) as { purged: number; durationMs: number };
  const t1 = Date.now();
  await exited;

  const { samples, requests, errors, non2xx } = JSON.parse(output) as { samples: [number, number][]; requests: number; errors: number; non2xx: number };
  const during: number[] = [];
  const outside: number[] = [];
  for (const [end, latency] of samples) (end - latency <= t1 && end >= t0 ? during : outside).push(latency);
  during.sort((a, b) => a - b);
  outside.sort((a, b) => a - b);
  const label = Number.isFinite(sliceSize) ? `slice ${sliceSize}` : 'one go';
  console.log(
    `${label}: purged ${answer.purged} of ${ENTRIES} in ${answer.durationMs.toFixed(0)} ms (admin round trip ${t1 - t0} ms); ` +
      `hits during the purge: ${during.length}, p50 ${percentile(during, 50).toFixed(1)} ms, p99 ${percentile(during, 99).toFixed(1)} ms, max ${(during.at(-1) ?? NaN).toFixed(1)} ms; ` +
      `outside it: ${outside.length}, p50 ${percentile(outside, 50).toFixed(1)} ms, p99 ${percentile(outside, 99).toFixed(1)} ms; ` +
      `total ${requests} requests, ${errors} errors, ${non2xx} non-2xx; index after: ${JSON.stringify(index.size())}`,
  );

  await Promise.all([proxy.app.close(), admin.close()]);
  await origin.close();
  await new Promise((resolve) => originServer.close(resolve));
}

for (const slice of SLICES) await runOnce(slice);
