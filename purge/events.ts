import { channel } from 'node:diagnostics_channel';
import type { PurgeKind, PurgeMode } from './selectors.js';

/** Where a purge came from: the admin API or the PURGE method on the proxy listener. */
export type PurgeSource = 'admin' | 'method';

/** Published once per purge, after it finished; metrics count these (design.md §3). */
export interface PurgeEvent {
  /** What the purge named; a request naming URLs and tags has both. */
  readonly kinds: readonly PurgeKind[];
  readonly mode: PurgeMode;
  readonly source: PurgeSource;
  /** Stored variants removed (hard) or marked stale (soft). */
  readonly purged: number;
  readonly durationMs: number;
  /** Store operations that failed; the purge went on with the rest. */
  readonly errors: number;
}

export const purgeChannel = channel('lacquer:purge');

export function publishPurge(event: PurgeEvent): void {
  if (purgeChannel.hasSubscribers) purgeChannel.publish(event);
}
