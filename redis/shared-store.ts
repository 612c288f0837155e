import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Entry } from '../proxy/cache/entry.js';
import { isStreamingStore, type BodyWriter, type Store, type StreamingStore } from '../proxy/store/store.js';
import { publishRedisEvent } from './events.js';
import { NO_FILL_NOTICES, type FillNotices } from './fill-notices.js';
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
  /** Cross-instance coalescing (see RedisSharedOptions.lockTtl); 0 or absent: off. */
  readonly lockTtlMs?: number;
  /**
   * Word of released fill locks (FillSubscriber): a waiting instance looks
   * for the holder's copy when told, instead of polling. Absent: it looks
   * only when the lock would lapse.
   */
  readonly fills?: FillNotices;
}

/** Keys whose last wait found nothing (an uncacheable response, a failed fill): not waited for again this long. */
const NO_WAIT_MS = 30_000;

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
  #passesThrough: ((key: string) => boolean) | undefined;
  /** Fill locks this instance holds: key -> token. */
  readonly #held = new Map<string, string>();
  readonly #noWait = new LRUCache<string, true>({ max: 10_000, ttl: NO_WAIT_MS });

  constructor(options: SharedBackedOptions) {
    this.local = options.local;
    this.#options = options;
  }

  /** The flow's invalidation stamps, once the flow exists (main.ts). */
  watchPurges(stamps: PurgeStamps): void {
    this.#stamps = stamps;
  }

  /**
   * Which keys the flow sends straight to the origin on a miss, storing
   * nothing (hit-for-miss), once the flow exists (main.ts): a miss on one
   * takes no fill lock, as no fill follows to release it.
   */
  watchPassThrough(passesThrough: (key: string) => boolean): void {
    this.#passesThrough = passesThrough;
  }

  get(key: string, willFill?: boolean): readonly Entry[] | undefined | Promise<readonly Entry[] | undefined> {
    const held = this.local.get(key);
    if (held instanceof Promise) return held.then((found) => found ?? this.#fromShared(key, willFill));
    return held ?? this.#fromShared(key, willFill);
  }

  async set(entry: Entry): Promise<void> {
    // A fill lock this instance took for the key ends with this store, whether or not the copy goes to Redis.
    const token = this.#held.get(entry.key);
    this.#held.delete(entry.key);
    const release = () => (token === undefined ? undefined : this.#options.shared.unlock(entry.key, token));
    try {
      await this.local.set(entry);
    } catch (error) {
      release()?.catch((unlockError: unknown) => this.#options.onError(unlockError, 'shared lock'));
      throw error;
    }
    const body = entry.body;
    if (!Buffer.isBuffer(body) || body.length > this.#options.maxObjectSize || !this.#options.shared.ready) {
      release()?.catch((error: unknown) => this.#options.onError(error, 'shared lock'));
      return;
    }
    // The fetch began at requestTime: Redis refuses the copy if what it names was purged since.
    this.#options.shared
      .write(entry as Entry & { body: Buffer }, entry.requestTime)
      .finally(release)
      .catch((error: unknown) => this.#options.onError(error, 'shared write'));
  }

  /**
   * A fill that stored nothing (set() releases the lock of one that did):
   * its lock is released now rather than left to lapse, so the instances
   * waiting on it fetch for themselves at once.
   */
  fillEnded(key: string): void {
    const token = this.#held.get(key);
    if (token === undefined) return;
    this.#held.delete(key);
    this.#options.shared.unlock(key, token).catch((error: unknown) => this.#options.onError(error, 'shared lock'));
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

  /**
   * One Redis lookup per key at a time; concurrent requests for the key
   * share it. A request that will not fill a miss joins one under way, or
   * only looks: it takes no fill lock (nothing would release it until it
   * lapsed, holding the other instances that long) and waits on none.
   */
  #fromShared(key: string, willFill: boolean | undefined): Promise<readonly Entry[] | undefined> | undefined {
    if (!this.#options.shared.ready) return undefined;
    let reading = this.#reading.get(key);
    // Not shared: a request for the key that will fill may come meanwhile, and must be the one to lock.
    if (reading === undefined && willFill === false) return this.#lookup(key);
    if (reading === undefined) {
      reading = this.#read(key).finally(() => this.#reading.delete(key));
      this.#reading.set(key, reading);
    }
    return reading;
  }

  async #read(key: string): Promise<readonly Entry[] | undefined> {
    const found = await this.#lookup(key);
    // Holding the key's lock means this instance is filling it (or may): its own requests coalesce in the flow, they never wait on it.
    if (found !== undefined || !(this.#options.lockTtlMs! > 0) || this.#noWait.has(key) || this.#held.has(key)) return found;
    // Every request for a hit-for-miss key goes to the origin and stores nothing: no fill would release a lock.
    if (this.#passesThrough?.(key) === true) return found;
    return this.#fillOrWait(key);
  }

  /**
   * Cross-instance coalescing: the first instance to miss a key takes its
   * lock and fills it (its copy reaches Redis with set(), which releases the
   * lock and publishes the release); the others wait for that copy. A lost
   * holder blocks no one past lockTtl. Finding nothing when the wait ends
   * (the response was not storable, the fill failed) means fetching here,
   * and not waiting on this key again for a while.
   */
  async #fillOrWait(key: string): Promise<readonly Entry[] | undefined> {
    const { shared, lockTtlMs = 0 } = this.#options;
    const token = randomUUID();
    try {
      // Each Redis call is bounded: a Redis that stopped answering must not hold requests (its clients have no command timeout).
      if (await this.#bounded(shared.lock(key, token, lockTtlMs), 'shared tier lock')) {
        this.#held.set(key, token);
        // A fill that never stores leaves the lock to lapse; forget it here by then.
        setTimeout(() => this.#held.get(key) === token && this.#held.delete(key), lockTtlMs).unref();
        return undefined;
      }
      const found = await this.#waitForFill(key, this.#options.clock() + lockTtlMs);
      if (found === undefined) this.#noWait.set(key, true);
      return found;
    } catch (error) {
      this.#options.onError(error, 'shared lock');
    }
    this.#noWait.set(key, true);
    return this.#lookup(key);
  }

  /**
   * Waits for another instance's copy of `key` without polling: it looks
   * when the holder's release is published, when the subscription comes back
   * (a release may have been missed), and when the lock would lapse (a
   * holder that died publishes nothing) — never past `deadline`. Answers
   * undefined when the lock is gone and left no copy, or time is up.
   */
  async #waitForFill(key: string, deadline: number): Promise<readonly Entry[] | undefined> {
    const { shared, fills = NO_FILL_NOTICES } = this.#options;
    for (;;) {
      // Watching before looking: a release published while this look is under way still wakes the wait below.
      const watch = fills.watch(key);
      try {
        // The lock first: the holder stores before it releases, so a lock found gone means the copy (if any) is there to read.
        const left = await this.#bounded(shared.lockLeft(key), 'shared tier lock check');
        const found = await this.#lookup(key);
        if (found !== undefined) return found;
        const wait = Math.min(left, deadline - this.#options.clock());
        if (wait <= 0) return undefined;
        // A millisecond past the lock's end, so the next look finds it lapsed rather than a last sliver of it.
        await wakeOrTimeout(watch.woken, Math.ceil(wait) + 1);
      } finally {
        watch.stop();
      }
    }
  }

  /** A Redis call that fails once it takes longer than the shared tier's timeout. */
  async #bounded<T>(call: Promise<T>, what: string): Promise<T> {
    call.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        call,
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error(`${what} took more than ${this.#options.timeoutMs} ms`)), this.#options.timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #lookup(key: string): Promise<readonly Entry[] | undefined> {
    const stamp = this.#stamps?.stamp();
    let entries: Entry[];
    try {
      entries = await this.#bounded(this.#options.shared.read(key), 'shared tier lookup');
    } catch (error) {
      this.#options.onError(error, 'shared read');
      return undefined;
    }
    const now = this.#options.clock();
    const stamps = this.#stamps;
    // A purge this instance applied while Redis answered wins over what Redis said.
    const live = entries.filter((entry) => entry.deleteAt > now && (stamps === undefined || stamp === undefined || stamps.mayStore(key, stamp, entry.tags)));
    publishRedisEvent({ kind: 'shared-lookup', found: live.length > 0 });
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

/** Resolves when `woken` does or after `ms`, whichever is first; the timer goes with it. */
async function wakeOrTimeout(woken: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([woken, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export function sharedBacked(options: SharedBackedOptions): SharedBackedStore {
  return isStreamingStore(options.local) ? new StreamingSharedBackedStore(options) : new SharedBackedStore(options);
}
