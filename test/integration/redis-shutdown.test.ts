import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient } from 'redis';
import { afterEach, describe, expect, it } from 'vitest';
import type { RunningLacquer } from '../../proxy/main.js';
import { startLacquerProcess, type LacquerProcess } from '../helpers/child.js';
import { fetchText } from '../helpers/proxy.js';
import type { TestRedis } from '../helpers/redis.js';
import { useRedisFleet } from '../helpers/redis-fleet.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * Purges still queued for Redis when an instance shuts down (Redis was
 * away when they were made) are published during the drain, up to its
 * deadline; past it the instance exits as before and says how many the
 * other instances will not see.
 */

const fleet = useRedisFleet((request, response, count) => {
  response.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': request.url.slice(1).split('/')[0]! });
  response.end(`${request.url}#${count}`);
});

const children: LacquerProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) await child.stop('SIGKILL');
});

const get = async (lacquer: RunningLacquer, path: string) => (await fetchText(lacquer.proxyUrl + path, { headers: { host: 'shop.example' } })).body;
const purge = (adminUrl: string, body: object) => fetchText(`${adminUrl}/purge`, { method: 'POST', body: JSON.stringify(body) });

async function relayQueued(adminUrl: string): Promise<number> {
  const ready = JSON.parse((await fetchText(`${adminUrl}/readyz`)).body) as { redis?: { queued: number } };
  return ready.redis?.queued ?? -1;
}

/** The purges in the stream, as published. */
async function published(redis: TestRedis): Promise<{ from: string; spec: { tags: string[] } }[]> {
  const client = createClient({ url: redis.url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const entries = (await client.xRange('lacquer:purges', '-', '+')) ?? [];
    return entries.map((entry) => ({ from: String(entry.message['from']), spec: JSON.parse(String(entry.message['purge'])).spec }));
  } finally {
    client.destroy();
  }
}

describe('purges queued at shutdown', () => {
  it('a purge accepted while Redis was away, which returns during the drain, reaches the other instance before exit', async () => {
    // Kept across the restart, so B reads on from where it was (a Redis that lost its data would make it purge everything anyway).
    const redis = await fleet.redis({ persistDir: tempDir('lacquer-redis-shutdown-aof-') });
    const a = await fleet.start(fleet.config(redis, 'a'));
    const b = await fleet.start(fleet.config(redis, 'b'));
    const old = await get(b, '/news/1');
    const kept = await get(b, '/sport/1');

    await redis.stop('SIGTERM');
    expect((await purge(a.adminUrl, { tags: ['news'] })).status).toBe(200);
    expect(await relayQueued(a.adminUrl)).toBe(1);

    const closing = a.close({ drainTimeoutMs: 20_000 });
    // The scenario: Redis is back a while into A's drain (a restart taking two seconds), well before its deadline.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await redis.start();
    const report = await closing;
    expect(report.cutConnections).toBe(0);

    expect((await published(redis)).filter((entry) => entry.spec.tags.includes('news'))).toHaveLength(1);
    // B reconnects on its own, reads the purge and fetches anew.
    const fetched = fleet.origin.hits('/news/1');
    await expect.poll(() => get(b, '/news/1'), { timeout: 15_000, interval: 20 }).not.toBe(old);
    expect(fleet.origin.hits('/news/1')).toBe(fetched + 1);
    // Only what the purge named: B did not start over.
    expect(await get(b, '/sport/1')).toBe(kept);
    expect(fleet.origin.hits('/sport/1')).toBe(1);
  }, 60_000);

  it('with Redis gone for good, SIGTERM still exits 0 at the drain deadline and says how many purges were not delivered', async () => {
    const redis = await fleet.redis();
    const dir = tempDir('lacquer-redis-shutdown-');
    const file = join(dir, 'lacquer.yaml');
    writeFileSync(file, 'shutdown:\n  drainTimeout: 3s\ncache:\n  disk:\n    enabled: false\n');
    const child = await startLacquerProcess(['--origin', fleet.origin.url, '--config', file], { LACQUER_REDIS_URL: redis.url });
    children.push(child);
    await child.waitFor('purge stream read to its end');

    await redis.stop('SIGKILL');
    for (const tag of ['news', 'sport']) expect((await purge(child.adminUrl, { tags: [tag] })).status).toBe(200);
    expect(await relayQueued(child.adminUrl)).toBe(2);

    const started = Date.now();
    expect(await child.stop('SIGTERM')).toBe(0);
    const took = Date.now() - started;
    expect(child.output()).toMatch(/"queued":2\b.*purges not published before shutdown/);
    // It waited for Redis up to the deadline (3 s), and not unboundedly past it (generous: a loaded box is slow to exit).
    expect(took).toBeGreaterThanOrEqual(2_500);
    expect(took).toBeLessThan(20_000);
  }, 60_000);
});
