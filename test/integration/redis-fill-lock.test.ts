import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from 'redis';
import { afterEach, describe, expect, it } from 'vitest';
import type { Config } from '../../config/types.js';
import type { RunningLacquer } from '../../proxy/main.js';
import type { RedisClient } from '../../redis/connection.js';
import { SharedTier } from '../../redis/shared-tier.js';
import { startLacquerProcess, type LacquerProcess } from '../helpers/child.js';
import { testEntry } from '../helpers/entries.js';
import { fetchText } from '../helpers/proxy.js';
import type { TestRedis } from '../helpers/redis.js';
import { useRedisFleet } from '../helpers/redis-fleet.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * Cross-instance coalescing (`redis.shared.lockTtl`): whole instances on one
 * real redis-server, an origin the test can hold. What is counted is what
 * reaches the origin and what reaches Redis (its own INFO commandstats).
 */

/** What the held request is finally answered with: a storable response, one that may not be stored, or a connection reset. */
type HeldAnswer = 'storable' | 'no-store' | 'reset';

let held: { path: string; until: Promise<void>; answer: HeldAnswer } | undefined;

const fleet = useRedisFleet(async (request, response, count) => {
  let answer: HeldAnswer = 'storable';
  if (held !== undefined && request.url === held.path) {
    const { until } = held;
    answer = held.answer;
    held = undefined;
    await until;
  }
  if (answer === 'reset') {
    response.destroy();
    return;
  }
  response.writeHead(200, { 'cache-control': answer === 'no-store' ? 'no-store' : 'max-age=600' });
  response.end(`${request.url}#${count}`);
});

/** Holds the origin's answer to the next request for `path` until the returned function is called. */
function holdNext(path: string, answer: HeldAnswer = 'storable'): () => void {
  let release!: () => void;
  held = { path, answer, until: new Promise<void>((resolve) => (release = resolve)) };
  releases.push(release);
  return release;
}
const releases: (() => void)[] = [];
afterEach(() => {
  held = undefined;
  for (const release of releases.splice(0)) release();
});

function configFor(redis: TestRedis, instanceId: string, lockTtl: number): Config {
  const config = fleet.config(redis, instanceId);
  config.redis.shared.enabled = true;
  // Generous: a loaded CI box must not turn shared lookups into misses here.
  config.redis.shared.timeout = 2000;
  config.redis.shared.lockTtl = lockTtl;
  return config;
}

const get = (url: string, path: string) => fetchText(url + path, { headers: { host: 'shop.example' } });

async function rawClient(redis: TestRedis) {
  const client = createClient({ url: redis.url });
  client.on('error', () => undefined);
  await client.connect();
  cleanups.push(() => client.destroy());
  return client;
}
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

type Raw = Awaited<ReturnType<typeof rawClient>>;

/** Calls per command since the server started (INFO commandstats), commands run by scripts included. */
async function commandCalls(client: Raw): Promise<Map<string, number>> {
  const calls = new Map<string, number>();
  for (const line of (await client.info('commandstats')).split(/\r?\n/)) {
    const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
    if (match !== null) calls.set(match[1]!, Number(match[2]));
  }
  return calls;
}

/**
 * Commands issued between two snapshots, leaving out the test's own INFO and
 * the purge relay's stream reads (XREAD BLOCK wakes every 2 s on its own).
 */
function issuedBetween(before: Map<string, number>, after: Map<string, number>): { total: number; by: Record<string, number> } {
  const by: Record<string, number> = {};
  let total = 0;
  for (const [name, calls] of after) {
    if (name === 'info' || name.startsWith('x')) continue;
    const delta = calls - (before.get(name) ?? 0);
    if (delta > 0) {
      by[name] = delta;
      total += delta;
    }
  }
  return { total, by };
}

/** Waits (up to 20 s) until `check` holds; `what` names it in the failure. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`never: ${what}`);
    await sleep(10);
  }
}

/** Lock attempts (SET NX PX) Redis has taken so far. */
const lockAttempts = async (client: Raw) => (await commandCalls(client)).get('set') ?? 0;

describe('cross-instance coalescing', () => {
  it('a burst for one cold key on three instances reaches the origin once, and every client gets its body', async () => {
    const redis = await fleet.redis();
    const raw = await rawClient(redis);
    const instances = await Promise.all(['a', 'b', 'c'].map((id) => fleet.start(configFor(redis, id, 30_000))));
    const release = holdNext('/burst');
    const attempts = await lockAttempts(raw);
    const answers = Promise.all(instances.flatMap((lacquer) => Array.from({ length: 4 }, () => get(lacquer.proxyUrl, '/burst'))));
    // Every instance has missed and asked for the lock before the holder's answer comes back.
    await until(async () => fleet.origin.hits('/burst') === 1 && (await lockAttempts(raw)) >= attempts + 3, 'three lock attempts while the origin holds the fill');
    release();
    const bodies = (await answers).map((answer) => answer.body);
    expect(fleet.origin.hits('/burst')).toBe(1);
    expect(bodies).toHaveLength(12);
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toMatch(/^\/burst#\d+$/);
  }, 30_000);

  it('instances waiting for another one’s fill send Redis next to nothing while the origin is held, and answer as soon as it stores', async () => {
    const redis = await fleet.redis();
    const raw = await rawClient(redis);
    // A lock that would lapse only after the test's own time limit: the waiters can only be woken by the holder.
    const instances = await Promise.all(['a', 'b', 'c'].map((id) => fleet.start(configFor(redis, id, 120_000))));
    const release = holdNext('/slow');
    const attempts = await lockAttempts(raw);
    const answers = Promise.all(instances.flatMap((lacquer) => Array.from({ length: 3 }, () => get(lacquer.proxyUrl, '/slow'))));
    await until(async () => fleet.origin.hits('/slow') === 1 && (await lockAttempts(raw)) >= attempts + 3, 'three lock attempts while the origin holds the fill');
    const before = await commandCalls(raw);
    // The origin holds the fill for a second; polling every 10 ms would be about a hundred lookups per waiting instance.
    await sleep(1000);
    const issued = issuedBetween(before, await commandCalls(raw));
    // One subscriber connection per instance, whatever the number of waiting requests.
    const subscribers = (await raw.sendCommand(['CLIENT', 'LIST', 'TYPE', 'pubsub'])) as string;
    release();
    const bodies = (await answers).map((answer) => answer.body);
    // Two waiting instances: a few commands each to start waiting, none while nothing changes.
    expect(issued.total, JSON.stringify(issued.by)).toBeLessThanOrEqual(12);
    expect(subscribers.trim().split('\n')).toHaveLength(3);
    expect(fleet.origin.hits('/slow')).toBe(1);
    expect(new Set(bodies).size).toBe(1);
    expect(bodies).toHaveLength(9);
  }, 60_000);

  for (const answer of ['no-store', 'reset'] as const) {
    it(`a fill that stores nothing (origin answer: ${answer}) lets the waiting instances go at once, not when its lock lapses`, async () => {
      const redis = await fleet.redis();
      const raw = await rawClient(redis);
      const path = `/unstored-${answer}`;
      const [a, b] = await Promise.all(['a', 'b'].map((id) => fleet.start(configFor(redis, id, 120_000))));
      const release = holdNext(path, answer);
      const attempts = await lockAttempts(raw);
      const holder = get(a!.proxyUrl, path);
      await until(() => fleet.origin.hits(path) === 1, 'the holder reaching the origin');
      const waiting = get(b!.proxyUrl, path);
      await until(async () => (await lockAttempts(raw)) >= attempts + 2, 'the second instance asking for the lock');
      release();
      expect((await holder).status).toBe(answer === 'reset' ? 502 : 200);
      // Left waiting for the lock to lapse, it would answer only after two minutes.
      const waited = await Promise.race([waiting, sleep(20_000).then(() => 'still waiting after 20 s')]);
      expect(typeof waited === 'string' ? waited : waited.body).toMatch(new RegExp(`^${path}#\\d+$`));
      // Nothing was shared: the waiting instance asked the origin itself.
      expect(fleet.origin.hits(path)).toBe(2);
    }, 40_000);
  }

  for (const [request, headers, status] of [
    ['a Range request (passed through on a miss)', { range: 'bytes=0-1' }, 200],
    ['an only-if-cached request', { 'cache-control': 'only-if-cached' }, 504],
    ['a request for a hit-for-miss key (passed through)', {}, 200],
  ] as const) {
    it(`${request} takes no fill lock, so no other instance waits for a fill that will not come`, async () => {
      const redis = await fleet.redis();
      const raw = await rawClient(redis);
      const path = `/no-fill-${Object.keys(headers)[0] ?? 'hit-for-miss'}`;
      const [a, b] = await Promise.all(['a', 'b'].map((id) => fleet.start(configFor(redis, id, 120_000))));
      if (Object.keys(headers).length === 0) {
        // A first answer that may not be stored marks the key hit-for-miss on A (its fill released its lock).
        holdNext(path, 'no-store')();
        expect((await get(a!.proxyUrl, path)).status).toBe(200);
        await until(async () => (await raw.pTTL(`lacquer:shared:lock:shop.example${path}`)) === -2, 'the first fill releasing its lock');
      }
      const answer = await fetchText(a!.proxyUrl + path, { headers: { host: 'shop.example', ...headers } });
      expect(answer.status).toBe(status);
      expect(await raw.pTTL(`lacquer:shared:lock:shop.example${path}`)).toBe(-2);
      // A lock left behind would hold B for two minutes.
      const waited = await Promise.race([get(b!.proxyUrl, path), sleep(20_000).then(() => 'still waiting after 20 s')]);
      expect(typeof waited === 'string' ? waited : waited.body).toMatch(new RegExp(`^${path}#\\d+$`));
    }, 40_000);
  }

  it('a lock left by a process that died is waited on no longer than the lock has left to live, however long lockTtl is', async () => {
    const redis = await fleet.redis();
    const raw = await rawClient(redis);
    // Taken by an instance that was killed since: it will never release it, nor say so.
    await raw.set('lacquer:shared:lock:shop.example/orphaned', 'killed', { PX: 1500 });
    const a = await fleet.start(configFor(redis, 'a', 120_000));
    const answer = await Promise.race([get(a.proxyUrl, '/orphaned'), sleep(20_000).then(() => 'still waiting after 20 s')]);
    expect(typeof answer === 'string' ? answer : answer.status).toBe(200);
    expect(fleet.origin.hits('/orphaned')).toBe(1);
  }, 40_000);

  it('a holder killed mid-fill leaves the others waiting until its lock lapses, then they fetch themselves', async () => {
    const redis = await fleet.redis();
    const raw = await rawClient(redis);
    const dir = tempDir('lacquer-fill-lock-');
    const file = join(dir, 'lacquer.yaml');
    writeFileSync(file, `redis:\n  instanceId: doomed\n  shared:\n    enabled: true\n    timeout: 2s\n    lockTtl: 3s\n`);
    let doomed: LacquerProcess | undefined = await startLacquerProcess(['--config', file, '--origin', fleet.origin.url, '--cache-dir', join(dir, 'cache')], { LACQUER_REDIS_URL: redis.url, LACQUER_LOG_LEVEL: 'error' });
    try {
      holdNext('/orphan');
      const attempts = await lockAttempts(raw);
      // The process takes the lock and asks the origin, which holds its answer.
      void get(doomed.url, '/orphan').catch(() => undefined);
      await until(() => fleet.origin.hits('/orphan') === 1, 'the doomed holder reaching the origin');
      const b = await fleet.start(configFor(redis, 'b', 3_000));
      const waiting = get(b.proxyUrl, '/orphan');
      await until(async () => (await lockAttempts(raw)) >= attempts + 2, 'the second instance asking for the lock');
      await doomed.stop('SIGKILL');
      doomed = undefined;
        const answer = await Promise.race([waiting, sleep(20_000).then(() => 'still waiting after 20 s')]);
      expect(typeof answer === 'string' ? answer : answer.body).toMatch(/^\/orphan#\d+$/);
      expect(fleet.origin.hits('/orphan')).toBe(2);
    } finally {
      await doomed?.stop('SIGKILL');
    }
  }, 60_000);

  it('a waiter that missed the holder’s message (its subscription dropped) looks again once it is back, long before the lock lapses', async () => {
    const redis = await fleet.redis();
    const raw = await rawClient(redis);
    // A holder that is alive (its lock has a minute to live) and will store without saying so.
    await raw.set('lacquer:shared:lock:shop.example/unheard', 'elsewhere', { PX: 60_000 });
    const a: RunningLacquer = await fleet.start(configFor(redis, 'a', 60_000));
    const attempts = await lockAttempts(raw);
    const waiting = get(a.proxyUrl, '/unheard');
    await until(async () => (await lockAttempts(raw)) >= attempts + 1, 'the instance asking for the lock');
    const tier = new SharedTier({ client: raw as unknown as RedisClient, keyPrefix: 'lacquer:' });
    const now = Date.now();
    const entry = testEntry({ key: 'shop.example/unheard', body: Buffer.from('stored elsewhere'), requestTime: now, responseTime: now, storedAt: now, freshUntil: now + 600_000, deleteAt: now + 600_000 });
    expect(await tier.write(entry as Parameters<SharedTier['write']>[0], now)).toBe(true);
    await raw.del('lacquer:shared:lock:shop.example/unheard');
    // Its subscriber connection drops (as in a network blip) and reconnects.
    await raw.sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
    const answer = await Promise.race([waiting, sleep(20_000).then(() => 'still waiting after 20 s')]);
    expect(typeof answer === 'string' ? answer : answer.body).toBe('stored elsewhere');
    expect(fleet.origin.hits('/unheard')).toBe(0);
  }, 40_000);
});
