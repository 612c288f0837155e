import { createClient } from 'redis';
import { afterEach, describe, expect, it } from 'vitest';
import type { RelayedPurge } from '../../purge/purger.js';
import type { RedisClient } from '../../redis/connection.js';
import { PurgeStream } from '../../redis/purge-stream.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';

/**
 * Purges queued while Redis was away, published when it returns: a purge
 * arriving meanwhile, or a shutdown, must not lose any of them.
 */

let redis: TestRedis | undefined;
let stream: PurgeStream | undefined;
afterEach(async () => {
  await stream?.close(100);
  stream = undefined;
  await redis?.stop('SIGKILL');
  redis = undefined;
});

const purgeOf = (url: string): RelayedPurge => ({ spec: { urls: [url], tags: [], prefixes: [], all: false, mode: 'hard' } });

/**
 * A stream whose three purges were queued while Redis was down; Redis is
 * back and the flush is publishing the first (held `publishMs` in the step
 * before each publish, as a shared-tier purge can be).
 */
async function flushUnderWay(queueSize: number, publishMs: number): Promise<{ stream: PurgeStream; published: () => Promise<unknown[]> }> {
  redis = await startRedis();
  const server = redis;
  const client: RedisClient = createClient({ url: server.url, disableOfflineQueue: true }) as unknown as RedisClient;
  const reader: RedisClient = createClient({ url: server.url, disableOfflineQueue: true }) as unknown as RedisClient;
  let publishing: (() => void) | undefined;
  stream = new PurgeStream({
    client,
    reader,
    keyPrefix: 'lq:',
    instanceId: 'a',
    retention: 1000,
    queueSize,
    commandTimeoutMs: 2000,
    beforePublish: () =>
      new Promise<void>((resolve) => {
        publishing?.();
        setTimeout(resolve, publishMs);
      }),
    apply: async () => undefined,
    log: { info: () => undefined, warn: () => undefined },
  });
  stream.start();
  await stream.caughtUp(5000);
  await server.stop('SIGTERM');
  for (const url of ['http://h/1', 'http://h/2', 'http://h/3']) await stream.send(purgeOf(url));
  expect(stream.status().queued).toBe(3);
  const started = new Promise<void>((resolve) => (publishing = resolve));
  await server.start();
  await started;
  const published = async () => {
    const check = createClient({ url: server.url });
    await check.connect();
    const entries = await check.xRange('lq:purges', '-', '+');
    await check.destroy();
    return (entries ?? []).map((entry) => JSON.parse(entry.message['purge']!).spec);
  };
  return { stream, published };
}

describe('the purge outbox when Redis returns', () => {
  it('publishes the purge of everything a full queue folded into while its head was being published', async () => {
    const { stream, published } = await flushUnderWay(3, 300);
    await stream.send(purgeOf('http://h/4'));
    await expect.poll(async () => (await published()).some((spec) => (spec as { all: boolean }).all), { timeout: 10_000 }).toBe(true);
  }, 30_000);

  it('at shutdown, publishes everything queued within its budget even though a flush was already running', async () => {
    const { stream, published } = await flushUnderWay(100, 50);
    await stream.close(3000);
    expect(await published()).toHaveLength(3);
  }, 30_000);
});
