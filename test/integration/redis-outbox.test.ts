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

/** A stream on `server` with its two clients, instance `a`, no purges applied and nothing logged unless `warn` is given. */
function streamOn(server: TestRedis, options: { queueSize: number; commandTimeoutMs: number; beforePublish: (purge: RelayedPurge) => Promise<unknown>; warn?: () => void }): PurgeStream {
  const open = () => createClient({ url: server.url, disableOfflineQueue: true }) as unknown as RedisClient;
  return new PurgeStream({
    client: open(),
    reader: open(),
    keyPrefix: 'lq:',
    instanceId: 'a',
    retention: 1000,
    ...options,
    apply: async () => undefined,
    log: { info: () => undefined, warn: options.warn ?? (() => undefined) },
  });
}

/**
 * A stream whose three purges were queued while Redis was down; Redis is
 * back and the flush is publishing the first, whose step before the
 * publish (as a shared-tier purge has) waits for `release` and then takes
 * `publishMs`, as every later step does. Held, the first stays at the head
 * of the queue however slowly the test runs.
 */
async function flushUnderWay(queueSize: number, publishMs: number): Promise<{ stream: PurgeStream; published: () => Promise<unknown[]>; release: () => void }> {
  redis = await startRedis();
  const server = redis;
  let publishing: (() => void) | undefined;
  let release = (): void => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  stream = streamOn(server, {
    queueSize,
    commandTimeoutMs: 2000,
    beforePublish: async () => {
      publishing?.();
      await held;
      await new Promise((resolve) => setTimeout(resolve, publishMs));
    },
  });
  stream.start();
  await stream.caughtUp(5000);
  // Set before Redis goes: the client may not know it is gone when the first purge is sent, and that attempt's step,
  // held, is the one every later attempt waits for.
  const started = new Promise<void>((resolve) => (publishing = resolve));
  await server.stop('SIGTERM');
  for (const url of ['http://h/1', 'http://h/2', 'http://h/3']) await stream.send(purgeOf(url));
  expect(stream.status().queued).toBe(3);
  await server.start();
  await started;
  const published = async () => {
    const check = createClient({ url: server.url });
    await check.connect();
    const entries = await check.xRange('lq:purges', '-', '+');
    await check.destroy();
    return (entries ?? []).map((entry) => JSON.parse(entry.message['purge']!).spec);
  };
  return { stream, published, release };
}

describe('the purge outbox when Redis returns', () => {
  it('publishes the purge of everything a full queue folded into while its head was being published', async () => {
    const { stream, published, release } = await flushUnderWay(3, 300);
    await stream.send(purgeOf('http://h/4'));
    release();
    await expect.poll(async () => (await published()).some((spec) => (spec as { all: boolean }).all), { timeout: 10_000 }).toBe(true);
  }, 30_000);

  it('at shutdown, publishes everything queued within its budget even though a flush was already running', async () => {
    const { stream, published, release } = await flushUnderWay(100, 50);
    release();
    await stream.close(3000);
    expect(await published()).toHaveLength(3);
  }, 30_000);
});

/** A stream on a fresh Redis whose step before each publish is `beforePublish`; `published` reads the stream back. */
async function streamWith(beforePublish: (purge: RelayedPurge) => Promise<unknown>, commandTimeoutMs: number, log: { warn: () => void } = { warn: () => undefined }) {
  redis = await startRedis();
  const server = redis;
  stream = streamOn(server, { queueSize: 100, commandTimeoutMs, beforePublish, warn: log.warn });
  stream.start();
  await stream.caughtUp(5000);
  const published = async () => {
    const check = createClient({ url: server.url });
    await check.connect();
    const entries = await check.xRange('lq:purges', '-', '+');
    await check.destroy();
    return (entries ?? []).map((entry) => JSON.parse(entry.message['purge']!).spec as { urls: string[] });
  };
  return { stream, published };
}

/** A promise settled from outside. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((ok, fail) => ((resolve = ok), (reject = fail)));
  return { promise, resolve, reject };
}

describe('the step before a publish (the shared tier’s purge)', () => {
  it('outlasting the command timeout, it runs once per purge: retries wait for it, and the purge is published once it is done', async () => {
    const steps: ReturnType<typeof deferred>[] = [];
    let stepsWhenLetGo = 0;
    let failures = 0;
    const { stream, published } = await streamWith(
      () => {
        // The first purge's step is held until the test lets it go; the next one's answers at once.
        steps.push(deferred());
        if (steps.length > 1) steps.at(-1)!.resolve();
        return steps.at(-1)!.promise;
      },
      50,
      {
        warn: () => {
          // Each attempt that timed out logs a failure. After five, the step ends between two attempts:
          // the next one finds it done and only publishes.
          if (++failures === 5) {
            stepsWhenLetGo = steps.length;
            steps[0]!.resolve();
          }
        },
      },
    );
    await stream.send(purgeOf('http://h/slow'));
    await stream.send(purgeOf('http://h/next'));
    expect(stream.status().queued).toBe(2);
    await expect.poll(async () => (await published()).map((spec) => spec.urls[0]), { timeout: 10_000 }).toEqual(['http://h/slow', 'http://h/next']);
    expect(failures).toBeGreaterThanOrEqual(5);
    // Five attempts, one step; then one more for the purge behind it.
    expect(stepsWhenLetGo).toBe(1);
    expect(steps).toHaveLength(2);
  }, 30_000);

  it('a step that failed runs again at the next retry', async () => {
    let calls = 0;
    const { stream, published } = await streamWith(async () => {
      if (++calls === 1) throw new Error('the shared tier did not answer');
    }, 2000);
    await stream.send(purgeOf('http://h/1'));
    await expect.poll(async () => (await published()).length, { timeout: 10_000 }).toBe(1);
    expect(calls).toBe(2);
  }, 30_000);

  it('close() waits for a purge send() is publishing at that moment, and it reaches the stream', async () => {
    const step = deferred();
    let stepStarted!: () => void;
    const started = new Promise<void>((resolve) => (stepStarted = resolve));
    const { stream, published } = await streamWith(() => {
      stepStarted();
      return step.promise;
    }, 5000);
    const sending = stream.send(purgeOf('http://h/in-flight'));
    await started;
    const closing = stream.close(5000);
    step.resolve();
    await closing;
    await sending;
    expect((await published()).map((spec) => spec.urls[0])).toEqual(['http://h/in-flight']);
  }, 30_000);
});
