import { createClient } from 'redis';
import { describe, expect, it } from 'vitest';
import type { Config } from '../../config/types.js';
import { entryFields, type Entry } from '../../proxy/cache/entry.js';
import type { RunningLacquer } from '../../proxy/main.js';
import { softPurged } from '../../purge/soft.js';
import type { RedisClient } from '../../redis/connection.js';
import { SharedTier } from '../../redis/shared-tier.js';
import { testEntry } from '../helpers/entries.js';
import { fetchText } from '../helpers/proxy.js';
import type { TestRedis } from '../helpers/redis.js';
import { useRedisFleet } from '../helpers/redis-fleet.js';

/**
 * Soft purges and the shared tier: a soft purge marks the Redis copy stale
 * as it marks the local ones, so every instance (a new one included) serves
 * it stale while one refresh runs, as stale-while-revalidate allows; a hard
 * purge still removes it.
 */

const fleet = useRedisFleet((request, response, count) => {
  response.writeHead(200, { 'cache-control': 'max-age=600, stale-while-revalidate=600', 'surrogate-key': `all ${request.url.slice(1).split('/')[0]}` });
  response.end(`${request.url}#${count}`);
});

function configFor(redis: TestRedis, instanceId: string): Config {
  return fleet.sharedConfig(redis, instanceId);
}

const get = async (lacquer: RunningLacquer, path: string) => fetchText(lacquer.proxyUrl + path, { headers: { host: 'shop.example' } });
const purge = (lacquer: RunningLacquer, body: object) => fetchText(`${lacquer.adminUrl}/purge`, { method: 'POST', body: JSON.stringify(body) });

/** Polls `condition` until it holds, for at most 10 s. */
async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Waits until Redis holds the shared copy of `key` (copies are written in the background). */
async function untilShared(redis: TestRedis, key: string): Promise<void> {
  const client = createClient({ url: redis.url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await until(async () => {
      const generation = (await client.get('lacquer:shared:gen')) ?? '0';
      return (await client.exists(`lacquer:shared:${generation}:o:${key}`)) === 1;
    }, `${key} reaching the shared tier`);
  } finally {
    client.destroy();
  }
}

describe('soft purges and the shared tier', () => {
  it.each([
    ['by tag', (path: string) => ({ tags: [path.split('/')[1]!] })],
    ['by URL', (path: string) => ({ urls: [`http://shop.example${path}`] })],
    ['by bare path (every host)', (path: string) => ({ urls: [path] })],
    ['by prefix', (path: string) => ({ prefixes: [path.slice(0, path.lastIndexOf('/') + 1)] })],
    ['of everything', () => ({ all: true })],
  ])('soft %s: an instance that never held the entry serves the shared copy stale and refreshes it in the background', async (_name, selector) => {
    const path = `/soft${Math.random().toString(36).slice(2, 8)}/1`;
    const redis = await fleet.redis();
    const a = await fleet.start(configFor(redis, 'a'));
    const old = await get(a, path);
    await untilShared(redis, `shop.example${path}`);
    expect(fleet.origin.hits(path)).toBe(1);

    expect((await purge(a, { ...selector(path), soft: true })).status).toBe(200);

    const b = await fleet.start(configFor(redis, 'b'));
    const answer = await get(b, path);
    // The old copy from Redis, served stale at once rather than a blocking miss.
    expect(answer.body).toBe(old.body);
    expect(answer.headers['cache-status']).toMatch(/detail=stale-while-revalidate/);
    // One background refresh reaches the origin, and B serves its answer from then on.
    await until(() => fleet.origin.hits(path) === 2, 'the background refresh');
    await until(async () => (await get(b, path)).body !== old.body, 'the refreshed copy being served');
    expect(fleet.origin.hits(path)).toBe(2);
  });

  it.each([
    ['by tag', { tags: ['hard'] }],
    ['by URL', { urls: ['http://shop.example/hard/1'] }],
    ['of everything', { all: true }],
  ])('a hard purge %s still removes the shared copy: an instance that never held it fetches anew', async (_name, selector) => {
    const redis = await fleet.redis();
    const a = await fleet.start(configFor(redis, 'a'));
    const before = fleet.origin.hits('/hard/1');
    const old = await get(a, '/hard/1');
    await untilShared(redis, 'shop.example/hard/1');
    expect((await purge(a, selector)).status).toBe(200);

    const b = await fleet.start(configFor(redis, 'b'));
    const answer = await get(b, '/hard/1');
    expect(answer.body).not.toBe(old.body);
    expect(answer.headers['cache-status']).not.toMatch(/stale/);
    expect(fleet.origin.hits('/hard/1')).toBe(before + 2);
  });
});

type Stored = Entry & { body: Buffer };

/** A SharedTier on its own connection to `redis`; `between` runs after each read of a stored key and before the tier acts on it. */
async function tierOn(redis: TestRedis, between?: (key: string) => Promise<void>): Promise<{ tier: SharedTier; raw: RedisClient; close(): void }> {
  const raw = createClient({ url: redis.url }) as unknown as RedisClient;
  raw.on('error', () => undefined);
  await raw.connect();
  // The real client, with a pause after a soft purge reads a key's variants (the one HGETALL script), for the race below.
  const client = new Proxy(raw, {
    get(target, property) {
      if (property !== 'withTypeMapping' || between === undefined) return Reflect.get(target, property, target) as unknown;
      return (mapping: never) => {
        const binary = target.withTypeMapping(mapping);
        return new Proxy(binary, {
          get(inner, name) {
            if (name !== 'sendCommand') return Reflect.get(inner, name, inner) as unknown;
            return async (args: string[]) => {
              const reply = (await inner.sendCommand(args)) as unknown;
              if (args[0] === 'EVAL' && args[1]!.includes('HGETALL')) await between(args[3]!);
              return reply;
            };
          },
        });
      };
    },
  });
  const tier = new SharedTier({ client, keyPrefix: 'soft:', skewMs: 0 });
  return { tier, raw, close: () => raw.destroy() };
}

describe('the shared tier, soft', () => {
  const now = Date.now();
  const graced = (fields: Partial<Entry> & { key: string; body: Buffer }): Stored =>
    testEntry({ storedAt: now - 1000, freshUntil: now + 60_000, staleWhileRevalidateUntil: now + 120_000, staleIfErrorUntil: now + 300_000, deleteAt: now + 300_000, ...fields }, now) as Stored;

  it('marks what a tag names stale exactly as the local tiers do, variant by variant, and removes what has nothing left to serve', async () => {
    const { tier, close } = await tierOn(await fleet.redis());
    try {
      const br = graced({ key: 'h.example/a', vary: ['accept-encoding'], variant: 'br', tags: ['news'], body: Buffer.from('a in br') });
      const gzip = graced({ key: 'h.example/a', vary: ['accept-encoding'], variant: 'gzip', tags: ['sport'], body: Buffer.from('a in gzip') });
      // No grace and no validators: a soft purge leaves nothing to serve.
      const bare = testEntry({ key: 'h.example/b', tags: ['news'], body: Buffer.from('b') }, now) as Stored;
      const other = graced({ key: 'h.example/c', tags: ['sport'], body: Buffer.from('c') });
      for (const entry of [br, gzip, bare, other]) expect(await tier.write(entry, now)).toBe(true);

      const at = now + 10;
      expect(await tier.purge({ keys: [], tags: ['news'], everything: false, soft: { now: at } })).toBe(2);

      const a = await tier.read('h.example/a');
      expect(entryFields(a.find((entry) => entry.variant === 'br')!)).toEqual(entryFields(softPurged(br, at)));
      expect(a.find((entry) => entry.variant === 'br')!.freshUntil).toBe(at);
      expect(entryFields(a.find((entry) => entry.variant === 'gzip')!)).toEqual(entryFields(gzip));
      expect(await tier.read('h.example/b')).toEqual([]);
      expect((await tier.read('h.example/c')).map(entryFields)).toEqual([entryFields(other)]);
      // Marked once: a second soft purge finds nothing fresh to mark.
      expect(await tier.purge({ keys: [], tags: ['news'], everything: false, soft: { now: at + 10 } })).toBe(0);
    } finally {
      close();
    }
  });

  it('a soft purge of what only a scan finds marks the keys that match, and leaves the others fresh', async () => {
    const { tier, close } = await tierOn(await fleet.redis());
    try {
      // More than one SCAN step and one batch of marks.
      const keys = [...Array.from({ length: 1200 }, (_, i) => `h.example/p/${i}`), 'h.example/q/1', 'other.example/p/3'];
      await Promise.all(keys.map((key) => tier.write(graced({ key, body: Buffer.from(key) }), now)));
      const at = now + 10;
      const underP = (key: string) => key.startsWith('h.example/p/');
      expect(await tier.purge({ keys: [], tags: [], everything: true, soft: { now: at, matches: underP } })).toBe(1200);
      for (const key of keys) {
        const [entry] = await tier.read(key);
        expect(entry!.freshUntil).toBe(underP(key) ? at : now + 60_000);
        expect(entry!.body.toString()).toBe(key);
      }
    } finally {
      close();
    }
  });

  it('leaves fresh a copy whose fetch began after the purge, found by key, by tag or by a scan, as a write after it is let in', async () => {
    const redis = await fleet.redis();
    const { tier, close } = await tierOn(redis);
    const client = createClient({ url: redis.url }) as unknown as RedisClient;
    client.on('error', () => undefined);
    await client.connect();
    // The default allowance for clock skew between hosts (1 s): a copy whose fetch began up to that long after the purge counts as older.
    const purging = new SharedTier({ client, keyPrefix: 'soft:' });
    try {
      const at = now + 10;
      // Each kind of purge in turn (everything last: its mark refuses every later write), on keys and tags of its own.
      for (const [kind, purge] of [
        ['k', (keys: string[]) => ({ keys, tags: [], everything: false, soft: { now: at } })],
        ['t', () => ({ keys: [], tags: ['t'], everything: false, soft: { now: at } })],
        ['s', () => ({ keys: [], tags: [], everything: true, soft: { now: at } })],
      ] as const) {
        const copy = (name: string, fetchedAt: number) => graced({ key: `h.example/${kind}/${name}`, tags: [kind], body: Buffer.from(name), storedAt: fetchedAt, requestTime: fetchedAt });
        const copies = [copy('before', at - 5000), copy('within-skew', at + 500), copy('after', at + 1500)];
        for (const entry of copies) expect(await tier.write(entry, at - 10_000)).toBe(true);
        await purging.purge(purge(copies.map((entry) => entry.key)));
        const fresh = async (name: string) => (await tier.read(`h.example/${kind}/${name}`))[0]!.freshUntil > at;
        expect([kind, await fresh('before'), await fresh('within-skew'), await fresh('after')]).toEqual([kind, false, false, true]);
      }
    } finally {
      close();
      client.destroy();
    }
  });

  it('never overwrites a copy stored while the soft purge was reading the old one', async () => {
    const redis = await fleet.redis();
    const fresh = graced({ key: 'h.example/race', tags: ['news'], body: Buffer.from('new'), storedAt: now + 5 });
    let writer: SharedTier | undefined;
    const { tier, close } = await tierOn(redis, async () => {
      // Another instance stores the new content between the purge's read and its write (its fetch began after the purge).
      expect(await writer!.write(fresh, Date.now() + 1000)).toBe(true);
    });
    const other = await tierOn(redis);
    writer = other.tier;
    try {
      await tier.write(graced({ key: 'h.example/race', tags: ['news'], body: Buffer.from('old') }), now - 10_000);
      expect(await tier.purge({ keys: ['h.example/race'], tags: [], everything: false, soft: { now } })).toBe(0);
      expect((await tier.read('h.example/race')).map(entryFields)).toEqual([entryFields(fresh)]);
    } finally {
      close();
      other.close();
    }
  });
});
