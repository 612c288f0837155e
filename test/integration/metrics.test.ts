import { channel } from 'node:diagnostics_channel';
import { existsSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import type { Config } from '../../config/types.js';
import { PURGE_CHANNEL, type PurgeEvent } from '../../metrics/purge-events.js';
import { flowChannel, requestChannel } from '../../proxy/events.js';
import { startLacquer, type RunningLacquer } from '../../proxy/main.js';
import { TestClock } from '../helpers/clock.js';
import { wholeLacquerConfig } from '../helpers/lacquer.js';
import { startOrigin, type OriginHandler, type TestOrigin } from '../helpers/origin.js';
import { counterChanges, scrape, seriesKey, type Samples } from '../helpers/prometheus.js';
import { fetchText, type TestResponse } from '../helpers/proxy.js';
import { tempDir } from '../helpers/tempdir.js';
import { claimDirectory, unlockDirectory } from '../../proxy/store/disk-scan.js';

let origin: TestOrigin | undefined;
let lacquer: RunningLacquer | undefined;
let clock: TestClock;

afterEach(async () => {
  await lacquer?.close();
  await origin?.close();
  lacquer = undefined;
  origin = undefined;
});

/** The whole of Lacquer as main.ts wires it (metrics included), on loopback ports, in front of a counting origin. */
async function start(handler: OriginHandler, change: (config: Config) => void = () => {}): Promise<RunningLacquer> {
  clock = new TestClock();
  origin = await startOrigin(handler, { clock: clock.now });
  // The memory tier alone: these tests count per-tier figures.
  const config = wholeLacquerConfig(origin.url);
  change(config);
  lacquer = await startLacquer(config, { clock: clock.now });
  return lacquer;
}

function get(path: string, init?: Parameters<typeof fetchText>[1]): Promise<TestResponse> {
  return fetchText(lacquer!.proxyUrl + path, init);
}

function metrics(): Promise<Samples> {
  return scrape(lacquer!.adminUrl);
}

/** The change each step makes to every Lacquer counter, scraped over HTTP before and after. */
async function changesDuring(step: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = await metrics();
  await step();
  return counterChanges(before, await metrics());
}

const requests = (outcome: string, statusClass: string) => seriesKey('lacquer_requests_total', { outcome, status_class: statusClass });
const responseCount = (outcome: string) => seriesKey('lacquer_response_duration_seconds_count', { outcome });
const originCount = (statusClass: string) => seriesKey('lacquer_origin_requests_total', { status_class: statusClass });
const originDurationCount = (statusClass: string) => seriesKey('lacquer_origin_request_duration_seconds_count', { status_class: statusClass });
const bytes = (source: string) => seriesKey('lacquer_served_bytes_total', { source });

async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 2_000 && !(await condition()); i++) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('GET /metrics after real traffic', () => {
  it('counts a miss, then hits, with bytes from the origin and from the cache', async () => {
    await start((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
      response.end('ten bytes!');
    });
    expect(await changesDuring(() => get('/fresh'))).toEqual({
      [requests('miss', '2xx')]: 1,
      [responseCount('miss')]: 1,
      lacquer_cacheable_requests_total: 1,
      [originCount('2xx')]: 1,
      [originDurationCount('2xx')]: 1,
      [bytes('origin')]: 10,
    });
    expect(await changesDuring(async () => Promise.all([get('/fresh'), get('/fresh'), get('/fresh', { method: 'HEAD' })]))).toEqual({
      [requests('hit', '2xx')]: 3,
      [responseCount('hit')]: 3,
      lacquer_cacheable_requests_total: 3,
      lacquer_cache_hits_total: 3,
      // HEAD sends no body.
      [bytes('cache')]: 20,
    });
    const now = await metrics();
    expect(now.get('lacquer_cache_hit_ratio')).toBe(0.75);
    expect(now.get(seriesKey('lacquer_store_entries', { tier: 'memory' }))).toBe(1);
    expect(now.get(seriesKey('lacquer_store_bytes', { tier: 'memory' }))).toBeGreaterThan(10);
    expect(now.get(seriesKey('lacquer_store_max_bytes', { tier: 'memory' }))).toBe(defaults().cache.memory.maxSize);
    // The ten-byte body is the one body in the memory tier's one slab (4 MiB at the default size).
    expect(now.get(seriesKey('lacquer_memory_slab_bytes', { state: 'held' }))).toBe(10);
    expect(now.get(seriesKey('lacquer_memory_slab_bytes', { state: 'written' }))).toBe(10);
    expect(now.get(seriesKey('lacquer_memory_slab_bytes', { state: 'allocated' }))).toBe(4 * 1024 * 1024);
    expect(origin!.hits()).toBe(1);
  });

  it('counts requests that waited on another request’s fetch as coalesced', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    await start(async (_request, response) => {
      await gate;
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '4' });
      response.end('once');
    });
    const changes = await changesDuring(async () => {
      const answers = Array.from({ length: 4 }, () => get('/hot'));
      // The three followers are parked on the leader's fetch, as the counter itself shows, before the origin answers.
      await until(async () => (await metrics()).get('lacquer_coalesced_requests_total') === 3);
      release();
      await Promise.all(answers);
    });
    expect(origin!.hits()).toBe(1);
    expect(changes).toEqual({
      lacquer_coalesced_requests_total: 3,
      [requests('miss', '2xx')]: 4,
      [responseCount('miss')]: 4,
      lacquer_cacheable_requests_total: 4,
      [originCount('2xx')]: 1,
      [originDurationCount('2xx')]: 1,
      [bytes('origin')]: 16,
    });
  });

  it('counts stale-while-revalidate as a hit and the background refresh it starts', async () => {
    await start((_request, response, count) => {
      response.writeHead(200, { 'cache-control': 'max-age=10, stale-while-revalidate=60' });
      response.end(`v${count}`);
    });
    await get('/swr');
    clock.advance(15);
    const changes = await changesDuring(async () => {
      expect((await get('/swr')).body).toBe('v1');
      await until(() => origin!.hits() === 2);
      // The refresh has stored v2 once a request sees it.
      await until(async () => (await get('/swr')).body === 'v2');
    });
    const hitsAfterRefresh = changes[requests('hit', '2xx')]!;
    expect(hitsAfterRefresh).toBeGreaterThanOrEqual(1);
    expect(changes).toEqual({
      [requests('stale', '2xx')]: 1,
      [responseCount('stale')]: 1,
      [requests('hit', '2xx')]: hitsAfterRefresh,
      [responseCount('hit')]: hitsAfterRefresh,
      lacquer_cacheable_requests_total: 1 + hitsAfterRefresh,
      lacquer_cache_hits_total: 1 + hitsAfterRefresh,
      lacquer_background_refreshes_started_total: 1,
      [originCount('2xx')]: 1,
      [originDurationCount('2xx')]: 1,
      [bytes('cache')]: 2 + 2 * hitsAfterRefresh,
    });
  });

  it('counts one refresh however many stale answers are served while it runs', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    await start(async (_request, response, count) => {
      if (count > 1) await gate;
      response.writeHead(200, { 'cache-control': 'max-age=10, stale-while-revalidate=60', 'content-length': '2' });
      response.end(`v${count}`);
    });
    await get('/swr');
    clock.advance(15);
    const changes = await changesDuring(async () => {
      const answers = await Promise.all(Array.from({ length: 5 }, () => get('/swr')));
      expect(answers.every((answer) => answer.body === 'v1')).toBe(true);
    });
    release();
    expect(changes).toEqual({
      [requests('stale', '2xx')]: 5,
      [responseCount('stale')]: 5,
      lacquer_cacheable_requests_total: 5,
      lacquer_cache_hits_total: 5,
      lacquer_background_refreshes_started_total: 1,
      [bytes('cache')]: 10,
    });
  });

  it('counts a failed background refresh', async () => {
    await start((_request, response, count) => {
      if (count > 1) return void response.destroy();
      response.writeHead(200, { 'cache-control': 'max-age=10, stale-while-revalidate=60' });
      response.end('v1');
    });
    await get('/swr');
    clock.advance(15);
    const before = await metrics();
    await get('/swr');
    await until(async () => (await metrics()).get('lacquer_background_refreshes_failed_total') === 1);
    const changes = counterChanges(before, await metrics());
    expect(changes['lacquer_background_refreshes_started_total']).toBe(1);
    expect(changes['lacquer_background_refreshes_failed_total']).toBe(1);
    expect(changes[originCount('error')]).toBe(1);
  });

  it('counts stale served because the origin failed apart from hits, so an outage lowers the hit ratio', async () => {
    await start((_request, response, count) => {
      if (count === 1) {
        response.writeHead(200, { 'cache-control': 'max-age=10, stale-if-error=60', 'content-length': '4' });
        response.end('good');
      } else {
        response.writeHead(503, { 'content-type': 'text/plain' });
        response.end('down');
      }
    });
    await get('/sie');
    clock.advance(15);
    const changes = await changesDuring(async () => {
      const answer = await get('/sie');
      expect(answer.body).toBe('good');
      expect(answer.headers['cache-status']).toContain('stale-if-error');
    });
    expect(changes).toEqual({
      [requests('stale', '2xx')]: 1,
      [responseCount('stale')]: 1,
      lacquer_cacheable_requests_total: 1,
      lacquer_stale_on_origin_error_total: 1,
      [originCount('5xx')]: 1,
      [originDurationCount('5xx')]: 1,
      [bytes('cache')]: 4,
    });
    // One miss, one stale-on-error: no hits.
    expect((await metrics()).get('lacquer_cache_hit_ratio')).toBe(0);
  });

  it('counts passes and errors with their status classes, outside the hit ratio', async () => {
    await start((request, response) => {
      if (request.url === '/down') return void response.destroy();
      response.writeHead(201, { 'content-length': '2' });
      response.end('ok');
    });
    const changes = await changesDuring(async () => {
      expect((await get('/form', { method: 'POST', body: 'x=1' })).status).toBe(201);
      expect((await get('/down')).status).toBe(502);
    });
    expect(changes).toEqual({
      [requests('pass', '2xx')]: 1,
      [responseCount('pass')]: 1,
      [requests('error', '5xx')]: 1,
      [responseCount('error')]: 1,
      [originCount('2xx')]: 1,
      [originDurationCount('2xx')]: 1,
      [originCount('error')]: 1,
      [originDurationCount('error')]: 1,
      [bytes('origin')]: 2,
    });
  });

  it('counts evictions and expirations per tier', async () => {
    await start(
      (request, response) => {
        response.writeHead(200, { 'cache-control': request.url === '/short' ? 'max-age=1' : 'max-age=600' });
        response.end('x'.repeat(300));
      },
      (config) => {
        config.cache.memory.maxSize = 2048;
        config.cache.memory.maxObjectSize = 1024;
      },
    );
    const stored = await changesDuring(async () => {
      for (const path of ['/a', '/b', '/c', '/d', '/e']) await get(path);
    });
    const entries = (await metrics()).get(seriesKey('lacquer_store_entries', { tier: 'memory' }))!;
    expect(entries).toBeGreaterThan(0);
    expect(entries).toBeLessThan(5);
    expect(stored[seriesKey('lacquer_store_evictions_total', { tier: 'memory' })]).toBe(5 - entries);

    await get('/short');
    // Past max-age and the default stale-if-error window (10 s), so the entry is due for deletion.
    clock.advance(15);
    const expired = await changesDuring(() => get('/short'));
    expect(expired[seriesKey('lacquer_store_expirations_total', { tier: 'memory' })]).toBe(1);
  });

  it('counts purges by kind and mode, and the entries purged, from the purge channel', async () => {
    await start((_request, response) => void response.end());
    const purge = channel(PURGE_CHANNEL);
    const changes = await changesDuring(async () => {
      const events: PurgeEvent[] = [
        { kind: 'tag', soft: false, purged: 3, durationMs: 1.5 },
        { kind: 'tag', soft: true, purged: 2, durationMs: 0.5 },
        { kind: 'url', soft: false, purged: 0, durationMs: 0.1 },
      ];
      for (const event of events) purge.publish(event);
      // Nothing outside the closed set of kinds becomes a label.
      purge.publish({ kind: '/secret/url', soft: false, purged: 9, durationMs: 1 });
    });
    expect(changes).toEqual({
      [seriesKey('lacquer_purges_total', { kind: 'tag', mode: 'hard' })]: 1,
      [seriesKey('lacquer_purges_total', { kind: 'tag', mode: 'soft' })]: 1,
      [seriesKey('lacquer_purges_total', { kind: 'url', mode: 'hard' })]: 1,
      [seriesKey('lacquer_purged_entries_total', { kind: 'tag' })]: 5,
      [seriesKey('lacquer_purge_duration_seconds_count', { kind: 'tag' })]: 2,
      [seriesKey('lacquer_purge_duration_seconds_count', { kind: 'url' })]: 1,
    });
  });

  it.skipIf(!existsSync('/proc/self/ns/pid'))('reports whether the disk tier is in use: 1 on its own directory, 0 while another Lacquer holds it, absent without one', async () => {
    const root = tempDir('lacquer-metrics-disk-');
    const withDisk = (dir: string) => (config: Config) => {
      config.cache.disk.enabled = true;
      config.cache.disk.path = dir;
    };
    const stop = async () => {
      await lacquer?.close();
      await origin?.close();
      lacquer = undefined;
      origin = undefined;
    };
    const cacheable: OriginHandler = (_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end('body');
    };
    await start(cacheable, withDisk(join(root, 'own')));
    // Answered once the write is done, so the claim of the directory is decided by then.
    expect((await get('/a')).headers['cache-status']).toContain('stored');
    expect((await metrics()).get('lacquer_disk_tier_in_use')).toBe(1);
    await stop();

    // Held by a Lacquer in another PID namespace on this host whose lock is fresh.
    const held = join(root, 'held');
    await claimDirectory(held);
    await unlockDirectory(held);
    writeFileSync(join(held, 'lacquer.lock'), `1 ${hostname()} their-nonce pid:[1]\n`);
    await start(cacheable, withDisk(held));
    expect((await get('/a')).headers['cache-status']).not.toContain('stored');
    const samples = await metrics();
    expect(samples.get('lacquer_disk_tier_in_use')).toBe(0);
    // Each response it could not store is counted.
    expect(samples.get(seriesKey('lacquer_store_errors_total', { operation: 'write' }))).toBe(1);
    await stop();

    await start((_request, response) => void response.end());
    expect((await metrics()).has('lacquer_disk_tier_in_use')).toBe(false);
  });

  it('serves process metrics with the lacquer_ prefix and the Prometheus content type', async () => {
    await start((_request, response) => void response.end());
    const response = await fetchText(`${lacquer!.adminUrl}/metrics`);
    expect(response.headers['content-type']).toContain('text/plain; version=0.0.4');
    expect(response.body).toMatch(/^lacquer_process_cpu_user_seconds_total \d/m);
    expect(response.body).not.toMatch(/^process_/m);
  });

  it('serves no /metrics and records nothing when metrics are disabled', async () => {
    await start(
      (_request, response) => void response.end(),
      (config) => {
        config.metrics.enabled = false;
      },
    );
    expect((await fetchText(`${lacquer!.adminUrl}/metrics`)).status).toBe(404);
    // With logs silent too, nobody listens, so the proxy builds no events at all.
    expect(requestChannel.hasSubscribers).toBe(false);
    expect(flowChannel.hasSubscribers).toBe(false);
  });
});
