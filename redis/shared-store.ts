import type { Entry } from '../proxy/cache/entry.js';
import { isStreamingStore, type BodyWriter, type Store, type StreamingStore } from '../proxy/store/store.js';
import type { SharedTier } from './shared-tier.js';

/**
 * The local tiers over the shared tier in Redis. A key the local tiers do
 * not hold is looked up in Redis (bounded by `timeoutMs`) and, when found,
 * copied into the local tiers; small entries stored here are copied to
 * Redis in the background. Removing a key removes it from Redis too, so a
 * purge can never leave the old content there for the next instance.
 *
 * Redis failing or slow only turns shared hits into misses: every error is
 * reported and the request goes on as if the shared tier were empty.
 */

export interface SharedBackedOptions {
  readonly local: Store;
  readonly shared: SharedTier;
  /** Largest body copied to Redis, in bytes. */
  readonly maxObjectSize: number;
  /** Longest wait for a shared lookup before answering "not held". */
  readonly timeoutMs: number;
  readonly clock: () => number;
  readonly onError: (error: unknown, context: string) => void;
}

/** What the flow knows about purges made while a shared lookup was under way (Invalidations). */
export interface PurgeStamps {
  stamp(): number;
  mayStore(key: string, stamp: number, tags: readonly string[]): boolean;
}

export class SharedBackedStore implements Store {
  protected readonly local: Store;
  readonly #options: SharedBackedOptions;
  readonly #reading = new Map<string, Promise<readonly Entry[] | undefined>>();
  #stamps: PurgeStamps | undefined;

  constructor(options: SharedBackedOptions) {
    this.local = options.local;
    this.#options = options;
  }

  /** The flow's invalidation stamps, once the flow exists (main.ts). */
  watchPurges(stamps: PurgeStamps): void {
    this.#stamps = stamps;
  }

  get(key: string): readonly Entry[] | undefined | Promise<readonly Entry[] | undefined> {
    const held = this.local.get(key);
    if (held instanceof Promise) return held.then((found) => found ?? this.#fromShared(key));
    return held ?? this.#fromShared(key);
  }

  async set(entry: Entry): Promise<void> {
    await this.local.set(entry);
    const body = entry.body;
    if (!Buffer.isBuffer(body) || body.length > this.#options.maxObjectSize || !this.#options.shared.ready) return;
    // The fetch began at requestTime: Redis refuses the copy if what it names was purged since.
    this.#options.shared.write({ ...entry, body }, entry.requestTime).catch((error: unknown) => this.#options.onError(error, 'shared write'));
  }

  async delete(key: string): Promise<number> {
    const removed = await this.local.delete(key);
    this.#purgeShared(key);
    return removed;
  }

  async deleteVariant(entry: Entry): Promise<void> {
    const local = this.local as Store & { deleteVariant?(entry: Entry): unknown };
    if (local.deleteVariant === undefined) await local.delete(entry.key);
    else await local.deleteVariant(entry);
    // Redis holds a key's variants together; dropping them all is the safe side.
    this.#purgeShared(entry.key);
  }

  keys(): Iterable<string> | AsyncIterable<string> {
    return this.local.keys();
  }

  sweep(now: number) {
    return this.local.sweep(now);
  }

  stats() {
    return this.local.stats();
  }

  close() {
    return this.local.close();
  }

  #purgeShared(key: string): void {
    if (!this.#options.shared.ready) return;
    this.#options.shared.purge({ keys: [key], tags: [], everything: false }).catch((error: unknown) => this.#options.onError(error, 'shared delete'));
  }

  /** One Redis lookup per key at a time; concurrent requests for the key share it. */
  #fromShared(key: string): Promise<readonly Entry[] | undefined> | undefined {
    if (!this.#options.shared.ready) return undefined;
    let reading = this.#reading.get(key);
    if (reading === undefined) {
      reading = this.#read(key).finally(() => this.#reading.delete(key));
      this.#reading.set(key, reading);
    }
    return reading;
  }

  async #read(key: string): Promise<readonly Entry[] | undefined> {
    const stamp = this.#stamps?.stamp();
    let entries: Entry[];
    let timer: NodeJS.Timeout | undefined;
    try {
      const read = this.#options.shared.read(key);
      read.catch(() => undefined);
      entries = await Promise.race([
        read,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`shared tier lookup took more than ${this.#options.timeoutMs} ms`)), this.#options.timeoutMs);
        }),
      ]);
    } catch (error) {
      this.#options.onError(error, 'shared read');
      return undefined;
    } finally {
      clearTimeout(timer);
    }
    const now = this.#options.clock();
    const stamps = this.#stamps;
    // A purge this instance applied while Redis answered wins over what Redis said.
    const live = entries.filter((entry) => entry.deleteAt > now && (stamps === undefined || stamp === undefined || stamps.mayStore(key, stamp, entry.tags)));
    if (live.length === 0) return undefined;
    live.sort((a, b) => b.storedAt - a.storedAt);
    for (const entry of live) {
      try {
        await this.local.set(entry);
      } catch (error) {
        this.#options.onError(error, 'store write');
      }
    }
    return live;
  }
}

/** The same over local tiers that take streamed bodies (memory over disk). */
export class StreamingSharedBackedStore extends SharedBackedStore implements StreamingStore {
  get maxObjectSize(): number {
    return (this.local as StreamingStore).maxObjectSize;
  }

  createBodyWriter(): BodyWriter | undefined {
    return (this.local as StreamingStore).createBodyWriter();
  }
}

export function sharedBacked(options: SharedBackedOptions): SharedBackedStore {
  return isStreamingStore(options.local) ? new StreamingSharedBackedStore(options) : new SharedBackedStore(options);
}
