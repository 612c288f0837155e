import { readFileSync } from 'node:fs';
import { createClient, type RedisClientOptions } from 'redis';
import type { RedisOptions } from '../config/types.js';

/**
 * Turns the `redis:` config into node-redis client options, and makes
 * clients that never give up reconnecting. A client is built with its
 * offline queue disabled: while Redis is away a command fails at once, and
 * the caller decides what to keep (the purge relay queues purges itself,
 * bounded), instead of node-redis holding an unbounded backlog.
 */

export type RedisClient = ReturnType<typeof createClient>;

/** Longest pause between two reconnection attempts. */
const MAX_RECONNECT_DELAY_MS = 2000;

/** Exponential from 50 ms to 2 s, with jitter so a fleet does not reconnect in step after a Redis restart. */
export function reconnectDelay(retries: number, random: () => number = Math.random): number {
  const base = Math.min(50 * 2 ** Math.min(retries, 10), MAX_RECONNECT_DELAY_MS);
  return Math.round(base * (0.75 + random() * 0.5));
}

/** `readFile` reads the PEM files named by `redis.tls` (tests pass their own). */
export function clientOptions(options: RedisOptions, readFile: (path: string) => Buffer = (path) => readFileSync(path)): RedisClientOptions {
  if (options.url === null) throw new Error('redis.url is not set');
  const tls = options.url.startsWith('rediss:');
  const socket = {
    connectTimeout: options.connectTimeout,
    reconnectStrategy: (retries: number) => reconnectDelay(retries),
    ...(tls
      ? {
          tls: true as const,
          rejectUnauthorized: options.tls.rejectUnauthorized,
          ...(options.tls.ca === null ? {} : { ca: readFile(options.tls.ca) }),
          ...(options.tls.cert === null ? {} : { cert: readFile(options.tls.cert) }),
          ...(options.tls.key === null ? {} : { key: readFile(options.tls.key) }),
          ...(options.tls.servername === null ? {} : { servername: options.tls.servername }),
        }
      : {}),
  };
  return {
    url: options.url,
    ...(options.username === null ? {} : { username: options.username }),
    ...(options.password === null ? {} : { password: options.password }),
    socket,
    disableOfflineQueue: true,
  };
}

export function createRedisClient(options: RedisOptions, name: string): RedisClient {
  const client = createClient({ ...clientOptions(options), name });
  return client;
}
