import type { Entry } from '../cache/entry.js';
import type { FileBody } from '../cache/body.js';

export type MaybePromise<T> = T | Promise<T>;

/** Why an entry left a store; purge and metrics listen for these. */
export type RemovalReason = 'evict' | 'expire' | 'delete' | 'replace';

/**
 * Told about every entry a store holds and every one it lets go, so an index
 * kept elsewhere (tags for purge) stays in step. A persistent tier also
 * reports each entry it finds on disk at boot with onStore; the tiered store
 * reports once per entry (memory copies come and go silently).
 */
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
  /**
   * The live variants stored under a key, newest first, or undefined.
   * `willFill` false: the request looking will not fetch and store the key
   * on a miss (a Range or only-if-cached request); a tier that lets other
   * instances wait on its misses (the shared tier's fill lock) takes no lock
   * for it. Absent: it may.
   */
  get(key: string, willFill?: boolean): MaybePromise<readonly Entry[] | undefined>;
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
  /**
   * The origin fetch that followed a miss on `key` is over, whether or not
   * it stored anything. Optional: a tier that lets others wait on its
   * misses (the shared tier's fill lock) lets them go here.
   */
  fillEnded?(key: string): void;
}

/**
 * Writes one body as it streams past (a response too large for memory),
 * so it can be stored without ever being held whole.
 */
export interface BodyWriter {
  /** Appends a chunk; resolves when it is written. Failures are kept for `finish`, never thrown here. */
  write(chunk: Buffer): Promise<void>;
  /** Makes the body complete and durable under its final name; rejects if any write failed or it grew too large. */
  finish(): Promise<FileBody>;
  /** Lets go of the body: it is removed unless an entry stored since refers to it. Call once, always. */
  release(): void;
}

/** A tier that can take bodies as streams (the disk tier, and the tiered store over it). */
export interface StreamingStore extends Store {
  /** Largest body it will take, in bytes. */
  readonly maxObjectSize: number;
  /** A writer for a new body, or undefined when the tier cannot take one now. */
  createBodyWriter(): BodyWriter | undefined;
}

export function isStreamingStore(store: Store): store is StreamingStore {
  return typeof (store as Partial<StreamingStore>).createBodyWriter === 'function';
}
