import { createClient } from 'redis';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../config/types.js';
import type { RunningLacquer } from '../../proxy/main.js';
import { fetchText } from '../helpers/proxy.js';
import type { TestRedis } from '../helpers/redis.js';
import { useRedisFleet } from '../helpers/redis-fleet.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * Several whole Lacquer instances (as proxy/main.ts composes them) on one
 * real redis-server: purges made on one reach the others through the
 * Redis Stream, across restarts of an instance and of Redis itself.
 */

// Generous: the measured propagation is a few milliseconds (scripts/purge-propagation.ts); this only has to catch "never".
const PROPAGATION_BOUND_MS = 5_000;

// Every path is tagged with its own name and "all"; the body counts origin visits, so a refetch is visible.
const fleet = useRedisFleet((request, response, count) => {
  response.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': `all ${request.url.slice(1)}` });
  response.end(`${request.url}#${count}`);
});

const { redis: redisServer, start, stop } = fleet;

function configFor(redis: TestRedis, instanceId: string, extra: { cacheDir?: string; retention?: number; queueSize?: number } = {}): Config {
  const config = fleet.config(redis, instanceId);
  // Each test's Redis is fresh, but a prefix per test keeps even a reused port from mixing streams.
  config.redis.keyPrefix = `t${redis.port}:`;
  if (extra.retention !== undefined) config.redis.purge.retention = extra.retention;
  if (extra.queueSize !== undefined) config.redis.purge.queueSize = extra.queueSize;
  if (extra.cacheDir !== undefined) {
    config.cache.disk.enabled = true;
    config.cache.disk.path = extra.cacheDir;
  }
  return config;
}

// One Host throughout: keys name the host, and each instance listens on its own port.
const get = async (lacquer: RunningLacquer, path: string) => (await fetchText(lacquer.proxyUrl + path, { headers: { host: 'shop.example' } })).body;

async function purge(lacquer: RunningLacquer, body: object): Promise<{ status: number; body: string }> {
  return fetchText(`${lacquer.adminUrl}/purge`, { method: 'POST', body: JSON.stringify(body) });
}

/** Polls until `path` on `lacquer` no longer answers `old`; answers the time that took. A poll before the purge lands is a hit and asks the origin nothing. */
async function untilChanged(lacquer: RunningLacquer, path: string, old: string, boundMs = PROPAGATION_BOUND_MS): Promise<number> {
  const started = performance.now();
  for (;;) {
    const body = await get(lacquer, path);
    if (body !== old) return performance.now() - started;
    if (performance.now() - started > boundMs) throw new Error(`${path} still answered ${old} after ${boundMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function readyz(lacquer: RunningLacquer): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetchText(`${lacquer.adminUrl}/readyz`);
  return { status: response.status, body: JSON.parse(response.body) as Record<string, unknown> };
}

describe('purges shared through a Redis Stream', () => {
  it('a tag purge on A is effective on B and C, and what it does not name stays cached', async () => {
    const redis = await redisServer();
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((id) => start(configFor(redis, id))));
    const before = new Map<RunningLacquer, { red: string; blue: string }>();
    for (const lacquer of [a!, b!, c!]) before.set(lacquer, { red: await get(lacquer, '/red'), blue: await get(lacquer, '/blue') });
    const fetched = fleet.origin.hits();

    const answer = await purge(a!, { tags: ['red'] });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).purged).toBe(1);
    // A purged its own copy before answering.
    expect(await get(a!, '/red')).not.toBe(before.get(a!)!.red);
    for (const lacquer of [b!, c!]) await untilChanged(lacquer, '/red', before.get(lacquer)!.red);
    // One refetch of /red per instance, and /blue is still a hit everywhere.
    expect(fleet.origin.hits()).toBe(fetched + 3);
    for (const lacquer of [a!, b!, c!]) expect(await get(lacquer, '/blue')).toBe(before.get(lacquer)!.blue);
    expect(fleet.origin.hits()).toBe(fetched + 3);
  });

  it('an instance applies no purge twice and never its own: the counters say so', async () => {
    const redis = await redisServer();
    const a = await start(configFor(redis, 'a'));
    const b = await start(configFor(redis, 'b'));
    const old = await get(b, '/x');
    for (let i = 0; i < 5; i++) expect((await purge(a, { urls: [`http://shop.example/none-${i}`] })).status).toBe(200);
    await purge(a, { tags: ['x'] });
    await untilChanged(b, '/x', old);
    const metrics = async (lacquer: RunningLacquer) => (await fetchText(`${lacquer.adminUrl}/metrics`)).body;
    // Metrics live in one process here, so the counters add both instances: 6 published by A, 6 applied by B, none by A.
    expect(await metrics(a)).toMatch(/^lacquer_purge_relay_published_total 6$/m);
    expect(await metrics(a)).toMatch(/^lacquer_purge_relay_applied_total 6$/m);
  });

  it('an instance stopped while purges happen catches up from its saved position when it starts', async () => {
    const redis = await redisServer();
    const cacheDir = tempDir('lacquer-redis-catchup-');
    const a = await start(configFor(redis, 'a'));
    let b = await start(configFor(redis, 'b', { cacheDir }));
    const red = await get(b, '/red');
    const blue = await get(b, '/blue');
    await stop(b);

    expect((await purge(a, { tags: ['red'] })).status).toBe(200);
    const fetched = fleet.origin.hits();
    b = await start(configFor(redis, 'b', { cacheDir }));
    // main.ts reads the stream to its end before it listens: the first request already sees the purge.
    expect(await get(b, '/red')).not.toBe(red);
    // The rest came back from disk, untouched.
    expect(await get(b, '/blue')).toBe(blue);
    expect(fleet.origin.hits()).toBe(fetched + 1);
  });

  it('Redis stopped mid-run and started again: purges made meanwhile are queued, published, applied; nothing crashes', async () => {
    const redis = await redisServer({ persistDir: tempDir('lacquer-redis-aof-') });
    const a = await start(configFor(redis, 'a'));
    const b = await start(configFor(redis, 'b'));
    const red = await get(b, '/red');
    const blue = await get(b, '/blue');
    await get(a, '/red');

    await redis.stop('SIGTERM');
    // Both keep serving from their own tiers.
    expect(await get(b, '/red')).toBe(red);
    // The purge is answered (and done on A) without Redis, and queued for the others.
    const answer = await purge(a, { tags: ['red'] });
    expect(answer.status).toBe(200);
    const degraded = await readyz(a);
    expect(degraded.status).toBe(200);
    expect(degraded.body['degraded']).toBe(true);
    expect(degraded.body['redis']).toMatchObject({ connected: false, queued: 1 });
    expect((await fetchText(`${a.adminUrl}/metrics`)).body).toMatch(/^lacquer_purge_relay_queue 1$/m);

    await redis.start();
    await untilChanged(b, '/red', red, 20_000);
    // The stream survived (append-only file), so nothing had to be purged wholesale: /blue is still B's cached copy.
    expect(await get(b, '/blue')).toBe(blue);
    // Readiness recovers once both connections are back and the reader has caught up.
    const deadline = Date.now() + 20_000;
    while ((await readyz(a)).body['degraded'] !== false) {
      if (Date.now() > deadline) throw new Error(`still degraded: ${JSON.stringify((await readyz(a)).body)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await readyz(a)).body['redis']).toMatchObject({ connected: true, queued: 0, caughtUp: true });
    expect((await fetchText(`${a.adminUrl}/metrics`)).body).toMatch(/^lacquer_redis_errors_total\{operation="connection"\} [1-9]/m);
  });

  it('Redis restarted without its data: every instance purges what it holds, since purges may have gone with it', async () => {
    const redis = await redisServer();
    const a = await start(configFor(redis, 'a'));
    const b = await start(configFor(redis, 'b'));
    const blue = await get(b, '/blue');
    await get(a, '/blue');
    await redis.stop('SIGKILL');
    await redis.start();
    // Nothing was purged by anyone, yet /blue must be fetched again: the stream's epoch changed.
    await untilChanged(b, '/blue', blue, 20_000);
    // And purges flow again on the new stream.
    const red = await get(b, '/red');
    await purge(a, { tags: ['red'] });
    await untilChanged(b, '/red', red);
  });

  it('an instance away longer than the retention covers purges everything it holds when it returns', async () => {
    const redis = await redisServer();
    const cacheDir = tempDir('lacquer-redis-trim-');
    const a = await start(configFor(redis, 'a', { retention: 100 }));
    let b = await start(configFor(redis, 'b', { cacheDir, retention: 100 }));
    const blue = await get(b, '/blue');
    await stop(b);
    // Far more purges than the stream keeps, none naming /blue.
    for (let i = 0; i < 400; i++) await purge(a, { urls: [`http://shop.example/gone-${i}`] });
    b = await start(configFor(redis, 'b', { cacheDir, retention: 100 }));
    expect(await get(b, '/blue')).not.toBe(blue);
    expect((await fetchText(`${b.adminUrl}/metrics`)).body).toMatch(/^lacquer_purge_relay_resyncs_total\{reason="trimmed"\} 1$/m);
  });

  it('purges queued past the bound fold into one purge of everything, so the others still miss nothing', async () => {
    const redis = await redisServer({ persistDir: tempDir('lacquer-redis-fold-') });
    const a = await start(configFor(redis, 'a', { queueSize: 2 }));
    const b = await start(configFor(redis, 'b'));
    const blue = await get(b, '/blue');
    await redis.stop('SIGTERM');
    for (const tag of ['x', 'y', 'z']) expect((await purge(a, { tags: [tag] })).status).toBe(200);
    expect((await readyz(a)).body['redis']).toMatchObject({ queued: 1 });
    expect((await fetchText(`${a.adminUrl}/metrics`)).body).toMatch(/^lacquer_purge_relay_folded_total 1$/m);
    await redis.start();
    // No purge named /blue, but one of those three might have: B purges everything.
    await untilChanged(b, '/blue', blue, 20_000);
  });

  it('passes over a stream entry that is not a purge and goes on applying the rest', async () => {
    const redis = await redisServer();
    const a = await start(configFor(redis, 'a'));
    const b = await start(configFor(redis, 'b'));
    const red = await get(b, '/red');
    const raw = createClient({ url: redis.url });
    raw.on('error', () => undefined);
    await raw.connect();
    try {
      await raw.xAdd(`t${redis.port}:purges`, '*', { v: '1', from: 'stranger', purge: '{"spec":"everything please"}' });
      await raw.xAdd(`t${redis.port}:purges`, '*', { hello: 'world' });
    } finally {
      raw.destroy();
    }
    await purge(a, { tags: ['red'] });
    await untilChanged(b, '/red', red);
  });

  it('a Redis that hangs (connections open, no answers) delays a purge answer by at most connectTimeout, then the purge is queued', async () => {
    const redis = await redisServer();
    const configA = configFor(redis, 'a');
    configA.redis.connectTimeout = 300;
    const a = await start(configA);
    const b = await start(configFor(redis, 'b'));
    const red = await get(b, '/red');
    redis.pause();
    try {
      const answer = await purge(a, { tags: ['red'] });
      expect(answer.status).toBe(200);
      expect((await readyz(a)).body['redis']).toMatchObject({ queued: 1 });
      // At least the one publish that timed out (the queue's own retries may have timed out too by now).
      expect((await fetchText(`${a.adminUrl}/metrics`)).body).toMatch(/^lacquer_redis_errors_total\{operation="publish"\} [1-9]/m);
      // Still serving from the local tiers meanwhile.
      expect(await get(b, '/red')).toBe(red);
    } finally {
      redis.resume();
    }
    await untilChanged(b, '/red', red, 20_000);
  });

  it('starts and serves when Redis is not there, then joins when it comes up', async () => {
    const redis = await redisServer();
    await redis.stop('SIGKILL');
    const config = configFor(redis, 'a');
    config.redis.connectTimeout = 500;
    const a = await start(config);
    expect(await get(a, '/red')).toMatch(/^\/red#/);
    expect((await readyz(a)).body['degraded']).toBe(true);
    await redis.start();
    const b = await start(configFor(redis, 'b'));
    const red = await get(b, '/red');
    expect((await purge(a, { tags: ['red'] })).status).toBe(200);
    await untilChanged(b, '/red', red, 20_000);
  });
});
