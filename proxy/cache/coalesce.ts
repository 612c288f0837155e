import { LRUCache } from 'lru-cache';

/**
 * The waiting list: while one origin fetch fills a key, later requests for
 * it park on the same promise instead of each going to the origin. Waiters
 * are woken by the promise settling, never by polling.
 */
export class WaitingList<T> {
  readonly #inFlight = new Map<string, Promise<T>>();

  /** The fill already running for `key`, if any. */
  pending(key: string): Promise<T> | undefined {
    return this.#inFlight.get(key);
  }

  /** Starts `fill` as the one fetch for `key`; the key is free again once it settles, whatever the outcome. */
  run(key: string, fill: () => Promise<T>): Promise<T> {
    const promise = fill().finally(() => {
      if (this.#inFlight.get(key) === promise) this.#inFlight.delete(key);
    });
    this.#inFlight.set(key, promise);
    return promise;
  }

  get size(): number {
    return this.#inFlight.size;
  }
}

/**
 * Hit-for-miss markers: a key whose last response could not be shared is
 * fetched directly, without queueing, until the marker expires or a
 * cacheable response arrives. Without it, an uncacheable URL would have its
 * requests serialized behind one another on the waiting list.
 */
export class HitForMiss {
  readonly #until: LRUCache<string, number>;

  constructor(maxKeys = 100_000) {
    this.#until = new LRUCache<string, number>({ max: maxKeys });
  }

  mark(key: string, until: number): void {
    this.#until.set(key, until);
  }

  has(key: string, now: number): boolean {
    const until = this.#until.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#until.delete(key);
    return false;
  }

  clear(key: string): void {
    this.#until.delete(key);
  }
}

/**
 * Invalidation stamps, closing the race between an invalidation and a fetch
 * that started before it: a fetch remembers the stamp current when it
 * started, and its response is stored only if nothing invalidated its key,
 * one of its tags, a set of keys it falls in (a purged prefix), or
 * everything since.
 */
export class Invalidations {
  #sequence = 0;
  /** Stamps of keys, tags or matchers forgotten by the bounded maps: anything older than this is treated as invalidated. */
  #floor = 0;
  #all = 0;
  readonly #byKey: LRUCache<string, number>;
  readonly #byTag: LRUCache<string, number>;
  /** Recent invalidations of key sets (prefix purges), newest last. */
  readonly #matchers: { readonly matches: (key: string) => boolean; readonly stamp: number }[] = [];
  readonly #maxMatchers: number;

  constructor(maxKeys = 100_000, maxMatchers = 256) {
    const raiseFloor = (stamp: number, _name: string, reason: LRUCache.DisposeReason): void => {
      if (reason === 'evict') this.#floor = Math.max(this.#floor, stamp);
    };
    this.#byKey = new LRUCache<string, number>({ max: maxKeys, dispose: raiseFloor });
    this.#byTag = new LRUCache<string, number>({ max: maxKeys, dispose: raiseFloor });
    this.#maxMatchers = maxMatchers;
  }

  /** The stamp a fetch records when it starts. */
  stamp(): number {
    return this.#sequence;
  }

  invalidate(key: string): void {
    this.#byKey.set(key, ++this.#sequence);
  }

  invalidateTag(tag: string): void {
    this.#byTag.set(tag, ++this.#sequence);
  }

  /** Invalidates every key `matches` accepts (e.g. a path prefix). */
  invalidateMatching(matches: (key: string) => boolean): void {
    this.#matchers.push({ matches, stamp: ++this.#sequence });
    // Forgetting the oldest matcher is safe: the floor then refuses anything fetched before it.
    if (this.#matchers.length > this.#maxMatchers) this.#floor = Math.max(this.#floor, this.#matchers.shift()!.stamp);
  }

  invalidateAll(): void {
    this.#all = ++this.#sequence;
  }

  /**
   * Whether a response fetched since `stamp` may still be stored under `key`
   * with `tags` (the entry's tags: required, so no store path can forget a
   * tag purge).
   */
  mayStore(key: string, stamp: number, tags: readonly string[]): boolean {
    if (this.#all > stamp || this.#floor > stamp || (this.#byKey.get(key) ?? 0) > stamp) return false;
    for (const tag of tags) if ((this.#byTag.get(tag) ?? 0) > stamp) return false;
    for (let i = this.#matchers.length - 1; i >= 0 && this.#matchers[i]!.stamp > stamp; i--) {
      if (this.#matchers[i]!.matches(key)) return false;
    }
    return true;
  }
}
