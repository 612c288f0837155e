import { channel } from 'node:diagnostics_channel';

/**
 * What the Redis side of Lacquer reports, for metrics and nothing else:
 * published on a diagnostics channel so metrics/ observes it without the
 * relay knowing metrics exist (design.md §3).
 */

export type RedisOperation = 'connection' | 'publish' | 'read' | 'apply' | 'shared';
export type ResyncReason = 'trimmed' | 'reset';

export type RedisEvent =
  | { readonly kind: 'error'; readonly operation: RedisOperation }
  | { readonly kind: 'published' }
  | { readonly kind: 'applied' }
  | { readonly kind: 'folded' }
  | { readonly kind: 'resync'; readonly reason: ResyncReason }
  /** A lookup in the shared tier after the local tiers missed: found there, or not. */
  | { readonly kind: 'shared-lookup'; readonly found: boolean };

export const REDIS_CHANNEL = 'lacquer:redis';
export const redisChannel = channel(REDIS_CHANNEL);

export function publishRedisEvent(event: RedisEvent): void {
  if (redisChannel.hasSubscribers) redisChannel.publish(event);
}

/** The relay's state, read at scrape time and by /readyz. */
export interface RelayStatus {
  readonly connected: boolean;
  /** Purges waiting for Redis to take them. */
  readonly queued: number;
  /** The reader has applied everything the stream held when it (re)connected. */
  readonly caughtUp: boolean;
  readonly instanceId: string;
}
