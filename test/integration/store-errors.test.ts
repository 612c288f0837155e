import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { createObservability } from '../../metrics/index.js';
import type { Entry } from '../../proxy/cache/entry.js';
import { buildProxyServer } from '../../proxy/server.js';
import { MemoryStore } from '../../proxy/store/memory.js';
import { Origin } from '../../proxy/upstream/origin.js';
import { respond, startOrigin, type TestOrigin } from '../helpers/origin.js';
import { counterChanges, scrape, seriesKey } from '../helpers/prometheus.js';
import { fetchText } from '../helpers/proxy.js';

/** A memory tier whose disk is "full": every write fails, lookups work. */
class FailingWrites extends MemoryStore {
  override set(_entry: Entry): void {
    throw new Error('no space left on device');
  }
}

let origin: TestOrigin | undefined;
const cleanups: (() => Promise<unknown> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  await origin?.close();
  origin = undefined;
});

describe('store errors', () => {
  it('are counted by operation through the flow’s error hook, while the request is still answered from the origin', async () => {
    origin = await startOrigin(respond(200, { 'cache-control': 'max-age=60' }, 'fine'));
    const config = defaults();
    config.origin.url = origin.url;
    config.log.level = 'silent';
    const observability = createObservability(config);
    const store = new FailingWrites({ maxSize: 1 << 20, maxVariants: 4, clock: Date.now, listener: observability.storeListener('memory') });
    const transport = new Origin(origin.url, config.origin);
    const { app } = buildProxyServer({ config, store, origin: transport, clock: Date.now, onError: (_error, context) => observability.onFlowError(context) });
    const admin = Fastify();
    observability.attach({ admin, logger: app.log, tiers: [{ tier: 'memory', store }], store, storeTier: 'memory', clock: Date.now });
    await app.listen({ host: '127.0.0.1', port: 0 });
    await admin.listen({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => observability.close(), () => app.close(), () => admin.close(), () => transport.close());
    const proxyUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    const adminUrl = `http://127.0.0.1:${(admin.server.address() as AddressInfo).port}`;

    const before = await scrape(adminUrl);
    expect((await fetchText(`${proxyUrl}/a`)).body).toBe('fine');
    expect((await fetchText(`${proxyUrl}/a`)).body).toBe('fine');
    const changes = counterChanges(before, await scrape(adminUrl));
    expect(changes[seriesKey('lacquer_store_errors_total', { operation: 'write' })]).toBe(2);
    expect(changes[seriesKey('lacquer_requests_total', { outcome: 'miss', status_class: '2xx' })]).toBe(2);
    expect(origin.hits()).toBe(2);
  });
});
