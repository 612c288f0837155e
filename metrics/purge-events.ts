import { channel } from 'node:diagnostics_channel';

/**
 * The event the purge module publishes once per purge it carries out.
 * Defined here, on the observing side, so metrics can be built and tested
 * before purge exists; the purge module publishes exactly this shape on
 * this channel.
 */
export interface PurgeEvent {
  readonly kind: 'url' | 'tag' | 'prefix' | 'all';
  /** Soft purges mark entries stale instead of removing them. */
  readonly soft: boolean;
  /** Entries removed (or marked stale). */
  readonly purged: number;
  readonly durationMs: number;
}

export const PURGE_CHANNEL = 'lacquer:purge';
export const purgeChannel = channel(PURGE_CHANNEL);
