import cluster from 'node:cluster';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { Purger, RelayedPurge } from '../purge/purger.js';
import type { ReadinessPart } from '../proxy/admin.js';
import type { Store } from '../proxy/store/store.js';
import { createRedisClient, type RedisClient } from './connection.js';
import { publishRedisEvent } from './events.js';
import { FillSubscriber } from './fill-notices.js';
import { sharedBacked, type SharedBackedStore } from './shared-store.js';
import { SharedTier, sharedPurgeFor } from './shared-tier.js';
import { fileCursor, memoryCursor } from './cursor-file.js';
import { PurgeStream, type RelayLog } from './purge-stream.js';

/**
 * Wires purge propagation through Redis into a running composition: two
 * clients (one blocks on the stream), the stream relay added to the
 * purger, the position kept in the disk tier's directory when there is
 * one. Called by proxy/main.ts when `redis.url` is set, after the disk
 * tier's index is rebuilt (a tag purge finds only indexed entries).
 */

export interface AttachedRedis {
  readonly stream: PurgeStream;
  readonly instanceId: string;
  readonly readiness: () => ReadinessPart;
  /** Publishes purges still queued for up to `flushTimeoutMs` (PurgeStream.close), then disconnects. */
  close(flushTimeoutMs?: number): Promise<void>;
}

export interface RedisParts {
  readonly config: Config;
  readonly purger: Purger;
  /** The shared tier, when `redis.shared.enabled`: purged in Redis before each purge is published. */
  readonly shared?: AttachedShared;
  /** The disk tier's directory, when the disk tier is enabled. */
  readonly cacheDir: string | undefined;
  readonly log: RelayLog;
}

/**
 * The configured id, else host name and listen port. A port of 0 (chosen at
 * listen) gets a random suffix, and a cluster worker its worker id, so
 * processes sharing a host and port never take each other's purges for
 * their own.
 */
export function instanceIdFor(config: Config, worker: number | undefined = cluster.isWorker ? cluster.worker?.id : undefined): string {
  const base = config.redis.instanceId ?? (config.listen.port === 0 ? `${hostname()}:0:${randomUUID().slice(0, 8)}` : `${hostname()}:${config.listen.port}`);
  return worker === undefined ? base : `${base}:w${worker}`;
}

export function attachRedis(parts: RedisParts): AttachedRedis {
  const { config } = parts;
  const instanceId = instanceIdFor(config);
  const stream = new PurgeStream({
    client: createRedisClient(config.redis, `lacquer-${instanceId}`),
    reader: createRedisClient(config.redis, `lacquer-${instanceId}-reader`),
    keyPrefix: config.redis.keyPrefix,
    instanceId,
    retention: config.redis.purge.retention,
    queueSize: config.redis.purge.queueSize,
    commandTimeoutMs: config.redis.connectTimeout,
    apply: (purge) => parts.purger.applyRelayed(purge),
    ...(parts.shared === undefined ? {} : { beforePublish: (purge: RelayedPurge) => parts.shared!.purge(purge) }),
    positions: parts.cacheDir === undefined ? memoryCursor() : fileCursor(parts.cacheDir),
    log: parts.log,
  });
  parts.purger.addRelay(stream);
  stream.start();
  return {
    stream,
    instanceId,
    readiness: () => {
      const status = stream.status();
      return { name: 'redis', degraded: !status.connected || !status.caughtUp || status.queued > 0, detail: { ...status } };
    },
    close: (flushTimeoutMs) => stream.close(flushTimeoutMs),
  };
}

export interface AttachedShared {
  readonly store: SharedBackedStore;
  readonly tier: SharedTier;
  purge(purge: RelayedPurge): Promise<number>;
  close(): void;
}

/**
 * The local tiers over the shared tier in Redis (`redis.shared.enabled`):
 * its own connection, so lookups never queue behind purge-stream traffic.
 */
export function attachShared(config: Config, local: Store, clock: () => number, onError: (error: unknown, context: string) => void): AttachedShared {
  const client: RedisClient = createRedisClient(config.redis, 'lacquer-shared');
  client.on('error', () => publishRedisEvent({ kind: 'error', operation: 'shared' }));
  client.connect().catch(() => undefined);
  const tier = new SharedTier({ client, keyPrefix: config.redis.keyPrefix });
  // Only with cross-instance coalescing: one subscriber connection for every wait on another instance's fill.
  const fills = config.redis.shared.lockTtl > 0 ? subscribeToFills(client, tier, onError) : undefined;
  const store = sharedBacked({
    local,
    shared: tier,
    maxObjectSize: config.redis.shared.maxObjectSize,
    timeoutMs: config.redis.shared.timeout,
    lockTtlMs: config.redis.shared.lockTtl,
    ...(fills === undefined ? {} : { fills }),
    clock,
    onError: (error, context) => {
      publishRedisEvent({ kind: 'error', operation: 'shared' });
      onError(error, context);
    },
  });
  return {
    store,
    tier,
    purge: (purge) => tier.purge(sharedPurgeFor(purge, config.key, clock())),
    close: () => {
      fills?.close();
      if (client.isOpen) client.destroy();
    },
  };
}

function subscribeToFills(client: RedisClient, tier: SharedTier, onError: (error: unknown, context: string) => void): FillSubscriber {
  const subscriber = client.duplicate({ name: 'lacquer-shared-fills' });
  subscriber.on('error', () => publishRedisEvent({ kind: 'error', operation: 'shared' }));
  const fills = new FillSubscriber({
    subscriber,
    channel: tier.fillChannel,
    onError: (error) => {
      publishRedisEvent({ kind: 'error', operation: 'shared' });
      onError(error, 'shared fill notices');
    },
  });
  fills.start();
  return fills;
}
