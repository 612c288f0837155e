import type { Entry } from '../cache/entry.js';

export type MaybePromise<T> = T | Promise<T>;

/** Why an entry left a store; purge and metrics listen for these. */
export type RemovalReason = 'evict' | 'expire' | 'delete' | 'replace';

export interface StoreListener {
  onStore?(entry: Entry): void;
  onRemove?(entry: Entry, reason: RemovalReason): void;
}

/**
 * The contract every tier satisfies (memory now; disk and shared tiers
 * later), checked by one shared test suite. A key holds up to a bounded
 * number of variants; stores judge nothing but `deleteAt` and size.
 *
 * Methods may answer synchronously so the memory tier's hit path does not
 * pay for a promise; callers must accept either.
 */
export interface Store {
  /** The live variants stored under a key, newest first, or undefined. */
  get(key: string): MaybePromise<readonly Entry[] | undefined>;
  /** Stores an entry, replacing the variant with the same `variant` value under its key. */
  set(entry: Entry): MaybePromise<void>;
  /** Removes every variant under a key; answers how many were removed. */
  delete(key: string): MaybePromise<number>;
  /** Every stored key (for purge by prefix and for explain). */
  keys(): Iterable<string> | AsyncIterable<string>;
  /** Removes entries past deleteAt; answers how many were removed. */
  sweep(now: number): MaybePromise<number>;
  /** Bytes and entries currently held. */
  stats(): { entries: number; bytes: number; maxBytes: number };
  close(): MaybePromise<void>;
}
