import { createClient } from 'redis';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../config/types.js';
import type { RunningLacquer } from '../../proxy/main.js';
import type { RedisClient } from '../../redis/connection.js';
import { SharedTier } from '../../redis/shared-tier.js';
import { testEntry } from '../helpers/entries.js';
import { startOrigin } from '../helpers/origin.js';
import { fetchText } from '../helpers/proxy.js';
import type { TestRedis } from '../helpers/redis.js';
import { useRedisFleet } from '../helpers/redis-fleet.js';

/** The shared tier in a real redis-server under each instance's local tiers. */

const fleet = useRedisFleet((request, response, count) => {
  response.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': `all ${request.url.slice(1).split('/')[0]}` });
  response.end(`${request.url}#${count}`);
});

const { redis: redisServer, start } = fleet;

function configFor(redis: TestRedis, instanceId: string): Config {
  return fleet.sharedConfig(redis, instanceId);
}

const get = async (lacquer: RunningLacquer, path: string) => fetchText(lacquer.proxyUrl + path, { headers: { host: 'shop.example' } });
const purge = (lacquer: RunningLacquer, body: object) => fetchText(`${lacquer.adminUrl}/purge`, { method: 'POST', body: JSON.stringify(body) });

/** Waits until Redis holds the shared copy of `key` (copies are written in the background). */
async function untilShared(redis: TestRedis, key: string): Promise<void> {
  const client = createClient({ url: redis.url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const generation = (await client.get('lacquer:shared:gen')) ?? '0';
      if ((await client.exists(`lacquer:shared:${generation}:o:${key}`)) === 1) return;
      if (Date.now() > deadline) throw new Error(`${key} never reached the shared tier`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  } finally {
    client.destroy();
  }
}

describe('the shared tier', () => {
  it('serves a new instance what another one fetched, without asking the origin', async () => {
    const redis = await redisServer();
    const a = await start(configFor(redis, 'a'));
    const first = await get(a, '/news/1');
    await untilShared(redis, 'shop.example/news/1');
    const fetched = fleet.origin.hits();
    const b = await start(configFor(redis, 'b'));
    const fromShared = await get(b, '/news/1');
    expect(fromShared.body).toBe(first.body);
    expect(fleet.origin.hits()).toBe(fetched);
    // Copied into B's own tiers: a local hit from now on.
    expect((await get(b, '/news/1')).headers['cache-status']).toMatch(/hit/);
    expect((await fetchText(`${b.adminUrl}/metrics`)).body).toMatch(/^lacquer_shared_tier_lookups_total\{result="hit"\} 1$/m);
  });

  it('a tag purge empties the shared copy too, before the other instances hear of it', async () => {
    const redis = await redisServer();
    const a = await start(configFor(redis, 'a'));
    const old = await get(a, '/news/2');
    await get(a, '/sport/1');
    await untilShared(redis, 'shop.example/news/2');
    await untilShared(redis, 'shop.example/sport/1');
    expect((await purge(a, { tags: ['news'] })).status).toBe(200);
    // An instance that never held it finds no old copy in Redis, while /sport/1 still comes from there.
    const c = await start(configFor(redis, 'c'));
    const fetched = fleet.origin.hits();
    expect((await get(c, '/news/2')).body).not.toBe(old.body);
    await get(c, '/sport/1');
    expect(fleet.origin.hits()).toBe(fetched + 1);
  });

  it('a prefix purge (which Redis cannot look up by name) retires every shared entry', async () => {
    const redis = await redisServer();
    const a = await start(configFor(redis, 'a'));
    await get(a, '/news/3');
    await get(a, '/sport/2');
    await untilShared(redis, 'shop.example/sport/2');
    await purge(a, { prefixes: ['/news/'] });
    const c = await start(configFor(redis, 'c'));
    const fetched = fleet.origin.hits();
    await get(c, '/news/3');
    await get(c, '/sport/2');
    expect(fleet.origin.hits()).toBe(fetched + 2);
  });

  it('refuses a copy whose fetch began before a purge of what it names', async () => {
    const redis = await redisServer();
    const client = createClient({ url: redis.url });
    client.on('error', () => undefined);
    await client.connect();
    try {
      const tier = new SharedTier({ client: client as unknown as RedisClient, keyPrefix: 'race:', skewMs: 0 });
      const entry = testEntry({ key: 'shop.example/slow', tags: ['news'], body: Buffer.from('old'), deleteAt: Date.now() + 60_000 }) as Parameters<SharedTier['write']>[0];
      const fetchStarted = Date.now() - 5_000;
      await tier.purge({ keys: [], tags: ['news'], everything: false });
      expect(await tier.write(entry, fetchStarted)).toBe(false);
      expect(await tier.read('shop.example/slow')).toEqual([]);
      // A fetch that began after the purge is stored.
      expect(await tier.write(entry, Date.now() + 1)).toBe(true);
      expect((await tier.read('shop.example/slow'))[0]!.body.toString()).toBe('old');
    } finally {
      client.destroy();
    }
  });

  it('ignores what it cannot read as an entry in the shared tier, and fetches instead', async () => {
    const redis = await redisServer();
    const raw = createClient({ url: redis.url });
    raw.on('error', () => undefined);
    await raw.connect();
    try {
      await raw.hSet('lacquer:shared:0:o:shop.example/junk', { '': 'not an entry at all' });
      await raw.hSet('lacquer:shared:0:o:shop.example/forged', { '': Buffer.concat([Buffer.from([0, 0, 0, 2]), Buffer.from('{}body')]) });
    } finally {
      raw.destroy();
    }
    const a = await start(configFor(redis, 'a'));
    const fetched = fleet.origin.hits();
    expect((await get(a, '/junk')).body).toMatch(/^\/junk#/);
    expect((await get(a, '/forged')).body).toMatch(/^\/forged#/);
    expect(fleet.origin.hits()).toBe(fetched + 2);
  });

  it('a hung Redis turns shared lookups into misses after redis.shared.timeout, counted as errors', async () => {
    const redis = await redisServer();
    const config = configFor(redis, 'a');
    config.redis.shared.timeout = 200;
    const a = await start(config);
    redis.pause();
    try {
      const fetched = fleet.origin.hits();
      expect((await get(a, '/news/5')).status).toBe(200);
      expect(fleet.origin.hits()).toBe(fetched + 1);
      expect((await fetchText(`${a.adminUrl}/metrics`)).body).toMatch(/^lacquer_redis_errors_total\{operation="shared"\} [1-9]/m);
    } finally {
      redis.resume();
    }
  });

  it('with lockTtl, one instance fetches a missing key and the others take its copy (cross-instance coalescing)', async () => {
    const redis = await redisServer();
    let waiting: (() => void) | undefined;
    let arrived = 0;
    // The first request is held until a second one arrives (or 1.5 s pass): without the lock both instances would reach it.
    const slow = await startOrigin(async (request, response, count) => {
      arrived++;
      if (arrived === 1) await new Promise<void>((resolve) => ((waiting = resolve), setTimeout(resolve, 1500)));
      else waiting?.();
      response.writeHead(200, { 'cache-control': 'max-age=600' });
      response.end(`${request.url}#${count}`);
    });
    try {
      const configs = ['a', 'b'].map((id) => {
        const config = configFor(redis, id);
        config.origin.url = slow.url;
        config.redis.shared.lockTtl = 5000;
        return config;
      });
      const [a, b] = await Promise.all(configs.map((config) => start(config)));
      const [fromA, fromB] = await Promise.all([get(a!, '/hot'), get(b!, '/hot')]);
      expect(slow.hits()).toBe(1);
      expect(fromB.body).toBe(fromA.body);
    } finally {
      await slow.close();
    }
  });

  it('a lock whose holder is gone blocks the key no longer than lockTtl', async () => {
    const redis = await redisServer();
    const raw = createClient({ url: redis.url });
    raw.on('error', () => undefined);
    await raw.connect();
    try {
      // A holder that took the lock and vanished.
      await raw.set('lacquer:shared:lock:shop.example/orphan', 'gone', { PX: 400 });
    } finally {
      raw.destroy();
    }
    const config = configFor(redis, 'a');
    config.redis.shared.lockTtl = 400;
    const a = await start(config);
    const fetched = fleet.origin.hits();
    expect((await get(a, '/orphan')).status).toBe(200);
    expect(fleet.origin.hits()).toBe(fetched + 1);
  });

  it('with Redis gone, lookups are misses and the proxy serves from the origin and its own tiers', async () => {
    const redis = await redisServer();
    const a = await start(configFor(redis, 'a'));
    await redis.stop('SIGKILL');
    const fetched = fleet.origin.hits();
    expect((await get(a, '/news/4')).status).toBe(200);
    expect((await get(a, '/news/4')).headers['cache-status']).toMatch(/hit/);
    expect(fleet.origin.hits()).toBe(fetched + 1);
  });

  it('with lockTtl, a Redis that stops answering turns the lock into a miss after redis.shared.timeout, never a hang', async () => {
    const redis = await redisServer();
    const config = configFor(redis, 'a');
    config.redis.shared.timeout = 200;
    config.redis.shared.lockTtl = 10_000;
    const a = await start(config);
    redis.pause();
    try {
      const answer = await Promise.race([get(a, '/news/hang').then((r) => r.status), new Promise((resolve) => setTimeout(() => resolve('still waiting after 5 s'), 5_000))]);
      expect(answer).toBe(200);
    } finally {
      redis.resume();
    }
  }, 20_000);

  it('with lockTtl, the instance holding a key’s lock never waits on it: not after a soft purge, not for a second local request', async () => {
    const redis = await redisServer();
    const slow = await startOrigin(async (_request, response) => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      response.writeHead(200, { 'cache-control': 'no-store' });
      response.end('not storable');
    });
    try {
      const config = configFor(redis, 'a');
      config.origin.url = slow.url;
      config.redis.shared.lockTtl = 10_000;
      const a = await start(config);
      // A soft purge looks the key up (taking its lock); the requests after it must not wait for the lock to lapse.
      expect((await purge(a, { urls: ['http://shop.example/cold'], soft: true })).status).toBe(200);
      const started = Date.now();
      const first = get(a, '/cold');
      while (slow.hits() < 1) await new Promise((resolve) => setTimeout(resolve, 5));
      // A second request while the first fill (which will not be storable) is under way.
      const second = get(a, '/cold');
      expect((await first).status).toBe(200);
      expect((await second).status).toBe(200);
      // Two origin trips of 300 ms, far from the 10 s a wait on the lock would take.
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await slow.close();
    }
  }, 30_000);
});
