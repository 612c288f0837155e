import { afterAll, afterEach, beforeAll } from 'vitest';
import type { Config } from '../../config/types.js';
import { startLacquer, type RunningLacquer } from '../../proxy/main.js';
import { wholeLacquerConfig } from './lacquer.js';
import { startOrigin, type OriginHandler, type TestOrigin } from './origin.js';
import { startRedis, type TestRedis } from './redis.js';

export interface RedisFleet {
  /** The file's origin, started before its first test. */
  readonly origin: TestOrigin;
  /** A fresh redis-server, stopped after the test that started it. */
  redis(options?: { persistDir?: string }): Promise<TestRedis>;
  /** A whole Lacquer configuration (as proxy/main.ts composes it) for one instance on `redis`. */
  config(redis: TestRedis, instanceId: string): Config;
  /** The same with the shared tier on, and a generous timeout: a loaded CI box must not turn shared hits into misses. */
  sharedConfig(redis: TestRedis, instanceId: string): Config;
  /** A running instance, closed after the test unless stopped first. */
  start(config: Config): Promise<RunningLacquer>;
  stop(lacquer: RunningLacquer): Promise<void>;
}

/**
 * Whole Lacquer instances on real redis-servers, for the Redis integration
 * tests: one origin per file, and whatever a test starts (instances,
 * servers) is gone after it, even when the test fails.
 */
export function useRedisFleet(handler: OriginHandler): RedisFleet {
  let origin: TestOrigin | undefined;
  const running = new Set<RunningLacquer>();
  const servers = new Set<TestRedis>();

  beforeAll(async () => {
    origin = await startOrigin(handler);
  });
  afterEach(async () => {
    try {
      await Promise.allSettled([...running].map((lacquer) => lacquer.close()));
    } finally {
      running.clear();
      // Whatever happened above, no redis-server outlives its test.
      await Promise.allSettled([...servers].map((server) => server.stop('SIGKILL')));
      servers.clear();
    }
  });
  afterAll(() => origin?.close());

  return {
    get origin() {
      if (origin === undefined) throw new Error('the fleet origin starts in beforeAll');
      return origin;
    },
    async redis(options = {}) {
      const server = await startRedis(options);
      servers.add(server);
      return server;
    },
    config(redis, instanceId) {
      const config = wholeLacquerConfig(this.origin.url);
      config.redis.url = redis.url;
      config.redis.instanceId = instanceId;
      return config;
    },
    sharedConfig(redis, instanceId) {
      const config = this.config(redis, instanceId);
      config.redis.shared.enabled = true;
      config.redis.shared.timeout = 2000;
      return config;
    },
    async start(config) {
      const lacquer = await startLacquer(config);
      running.add(lacquer);
      return lacquer;
    },
    async stop(lacquer) {
      running.delete(lacquer);
      await lacquer.close();
    },
  };
}
