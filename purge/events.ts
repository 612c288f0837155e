import { channel } from 'node:diagnostics_channel';
import type { PurgeKind } from './selectors.js';

/**
 * Where a purge came from: the admin API, the PURGE method on the proxy
 * listener, or another copy of the cache (a worker, an instance) by relay.
 */
export type PurgeSource = 'admin' | 'method' | 'relay';

/**
 * Published once per purge, after it finished; metrics count these
 * (design.md §3). A request naming several kinds (URLs and tags, say) is
 * carried out as one purge per kind, so each event has exactly one kind.
 */
export interface PurgeEvent {
  readonly kind: PurgeKind;
  /** Soft purges mark entries stale instead of removing them. */
  readonly soft: boolean;
  /** Stored variants removed (hard) or made stale (soft). */
  readonly purged: number;
  readonly durationMs: number;
  readonly source: PurgeSource;
  /** Store operations that failed; the purge went on with the rest. */
  readonly errors: number;
}

export const purgeChannel = channel('lacquer:purge');

export function publishPurge(event: PurgeEvent): void {
  if (purgeChannel.hasSubscribers) purgeChannel.publish(event);
}
