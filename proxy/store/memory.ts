import { isFileBody } from '../cache/body.js';
import { LRUCache } from 'lru-cache';
import { withBody, type Entry } from '../cache/entry.js';
import { SlabArena, slabSizesFor, type SlabStats } from './slabs.js';
import type { RemovalReason, Store, StoreListener } from './store.js';

export interface MemoryStoreOptions {
  /** Bytes the tier may hold, counting every entry's `size`. */
  maxSize: number;
  /** Most variants kept per key; storing one more drops the oldest. */
  maxVariants: number;
  /** Current time in epoch ms. */
  clock: () => number;
  listener?: StoreListener;
  /** A held entry was replaced by a copy whose body lives elsewhere (slab compaction, see slabs.ts); `from` is no longer held. */
  onMove?: (from: Entry, to: Entry) => void;
}

/** Share of the slabs' bytes left unused (by evicted bodies) before the sparsest slab's bodies are moved (see slabs.ts); moves are rare under LRU eviction, so the bound is kept tight. */
const MAX_SLAB_WASTE = 0.1;

/**
 * The memory tier: an LRU over keys, bounded in bytes. Each key holds its
 * variants as one small array, so the LRU order and the size accounting
 * are per key. Bodies are Buffers, outside the V8 heap: most of them views
 * of shared slabs (slabs.ts), the larger ones buffers of their own.
 */
export class MemoryStore implements Store {
  readonly #lru: LRUCache<string, readonly Entry[]>;
  readonly #options: MemoryStoreOptions;
  /** Why the next dispose happens when it is not the LRU's own eviction. */
  #removal: RemovalReason | undefined;
  /** Variants held, kept in step with every change so stats() (read by every scrape) is O(1). */
  #entries = 0;
  readonly #slabs: SlabArena<Entry>;

  constructor(options: MemoryStoreOptions) {
    this.#options = options;
    this.#slabs = new SlabArena<Entry>({
      ...slabSizesFor(options.maxSize),
      maxWaste: MAX_SLAB_WASTE,
      isHeld: (entry) => this.#holds(entry),
      relocate: (entries) => this.#move(entries),
    });
    this.#lru = new LRUCache<string, readonly Entry[]>({
      maxSize: options.maxSize,
      sizeCalculation: (variants) => Math.max(1, sumSizes(variants)),
      noDisposeOnSet: true,
      dispose: (variants, _key, reason) => {
        this.#entries -= variants.length;
        const why: RemovalReason = this.#removal ?? (reason === 'evict' ? 'evict' : 'delete');
        for (const entry of variants) this.#removed(entry, why);
      },
    });
  }

  /** Bytes the tier may hold: an entry charged more is never kept. */
  get maxSize(): number {
    return this.#options.maxSize;
  }

  get(key: string): readonly Entry[] | undefined {
    const variants = this.#lru.get(key);
    if (variants === undefined) return undefined;
    const now = this.#options.clock();
    // Stores judge only deleteAt; a key whose variants are all past it is gone. A plain loop: this runs on every hit.
    if (allLive(variants, now)) return variants;
    const live = this.#replaceVariants(key, variants, (entry) => entry.deleteAt > now, 'expire');
    return live.length === 0 ? undefined : live;
  }

  set(given: Entry): void {
    if (given.size > this.#options.maxSize) return;
    const entry = this.#withOwnBody(given);
    // Counted before anything is let go of: releasing the entry this one replaces (a freshened entry keeps the same body)
    // or those the LRU evicts could otherwise drop or retire this very body's slab first, leaving the body in a slab no longer tracked.
    const counted = Buffer.isBuffer(entry.body) && this.#slabs.hold(entry.body, entry);
    const previous = this.#lru.peek(entry.key) ?? [];
    const others = previous.filter((stored) => stored.variant !== entry.variant);
    const replaced = previous.filter((stored) => stored.variant === entry.variant);
    // Newest first; beyond the cap the oldest variants go, so a Vary explosion cannot grow a key without bound,
    // and so do old variants that would take the key past the whole tier (which would make the LRU refuse it whole).
    let kept = [entry, ...others].slice(0, this.#options.maxVariants);
    while (kept.length > 1 && sumSizes(kept) > this.#options.maxSize) kept = kept.slice(0, -1);
    const dropped = others.slice(kept.length - 1);
    this.#put(entry.key, previous, kept);
    for (const old of replaced) this.#removed(old, 'replace');
    for (const old of dropped) this.#removed(old, 'evict');
    if (this.#lru.peek(entry.key)?.[0] !== entry) {
      if (counted) this.#slabs.release(entry.body as Buffer);
      return;
    }
    if (entry !== given) this.#options.onMove?.(given, entry);
    this.#options.listener?.onStore?.(entry);
  }

  /**
   * The bytes as the memory tier keeps them: a copy in a slab (slabs.ts),
   * or for a body too large for one, the buffer itself when it owns its
   * memory (see ownBuffer). A body already in a live slab is kept as it is.
   */
  own(body: Buffer): Buffer {
    if (this.#slabs.isPlaced(body)) return body;
    return this.#slabs.place(body) ?? ownBuffer(body);
  }

  delete(key: string): number {
    const variants = this.#lru.peek(key);
    if (variants === undefined) return 0;
    this.#withReason('delete', () => this.#lru.delete(key));
    return variants.length;
  }

  /**
   * Removes one stored variant (e.g. when a revalidation says it may no
   * longer be stored): the one stored at the same moment as `entry`, which
   * may be the stored copy of it rather than the same object. A newer
   * answer stored for the variant since is left alone.
   */
  deleteVariant(entry: Entry): void {
    const variants = this.#lru.peek(entry.key);
    if (variants === undefined) return;
    this.#replaceVariants(entry.key, variants, (stored) => stored !== entry && !(stored.variant === entry.variant && stored.storedAt === entry.storedAt), 'delete');
  }

  /** Removes the variant with this value under a key, whichever entry object holds it. */
  deleteVariantOf(key: string, variant: string): void {
    const variants = this.#lru.peek(key);
    if (variants === undefined) return;
    this.#replaceVariants(key, variants, (stored) => stored.variant !== variant, 'delete');
  }

  /** The variants under a key without touching its recency or judging expiry. */
  peek(key: string): readonly Entry[] | undefined {
    return this.#lru.peek(key);
  }

  *keys(): Iterable<string> {
    yield* this.#lru.keys();
  }

  /**
   * Removes expired entries among the `budget` least recently used keys.
   * Bounded, so a periodic sweep of a tier holding hundreds of thousands of
   * keys never holds the event loop for long: a key used more recently is
   * judged when it is next read, and its memory is taken back by eviction.
   */
  sweep(now: number, budget = SWEEP_BUDGET): number {
    let removed = 0;
    const oldest: string[] = [];
    for (const key of this.#lru.rkeys()) {
      if (oldest.length >= budget) break;
      oldest.push(key);
    }
    for (const key of oldest) {
      const variants = this.#lru.peek(key);
      if (variants === undefined) continue;
      removed += variants.length - this.#replaceVariants(key, variants, (entry) => entry.deleteAt > now, 'expire').length;
    }
    return removed;
  }

  /** The slabs holding bodies (slabs.ts): their bytes against those written and still held, which shows what compaction leaves unused. */
  slabStats(): SlabStats {
    return this.#slabs.stats();
  }

  stats(): { entries: number; bytes: number; maxBytes: number } {
    return { entries: this.#entries, bytes: this.#lru.calculatedSize, maxBytes: this.#options.maxSize };
  }

  close(): void {
    this.#withReason('delete', () => this.#lru.clear());
  }

  /** Keeps the variants that pass `keep`, reporting the others as removed for `reason`. */
  #replaceVariants(key: string, variants: readonly Entry[], keep: (entry: Entry) => boolean, reason: RemovalReason): readonly Entry[] {
    const live = variants.filter(keep);
    if (live.length === variants.length) return variants;
    if (live.length === 0) {
      this.#withReason(reason, () => this.#lru.delete(key));
      return live;
    }
    this.#put(key, variants, live);
    for (const entry of variants) if (!live.includes(entry)) this.#removed(entry, reason);
    return live;
  }

  /** Every way an entry leaves the tier ends here. */
  #removed(entry: Entry, reason: RemovalReason): void {
    if (Buffer.isBuffer(entry.body)) this.#slabs.release(entry.body);
    this.#options.listener?.onRemove?.(entry, reason);
  }

  #holds(entry: Entry): boolean {
    return this.#lru.peek(entry.key)?.includes(entry) === true;
  }

  /** Moves held entries' bodies out of a retired slab: each is replaced, in place and without touching recency, by a copy with its body in the slab being filled. */
  #move(entries: readonly Entry[]): void {
    for (const entry of entries) {
      const variants = this.#lru.peek(entry.key) as Entry[] | undefined;
      const at = variants === undefined ? -1 : variants.indexOf(entry);
      if (at < 0 || !Buffer.isBuffer(entry.body)) continue;
      const moved = withBody(entry, this.#slabs.place(entry.body, 'moved') ?? ownBuffer(entry.body));
      variants![at] = moved;
      if (Buffer.isBuffer(moved.body)) this.#slabs.hold(moved.body, moved);
      this.#options.onMove?.(entry, moved);
    }
  }

  #withOwnBody(entry: Entry): Entry {
    const body = entry.body;
    if (isFileBody(body)) return entry;
    const own = this.own(body);
    return own === body ? entry : withBody(entry, own);
  }

  /**
   * Replaces a key's variants. The LRU does not dispose of a value it
   * overwrites (noDisposeOnSet), so the count moves by the difference here;
   * a value it refuses (too large) makes it dispose of the old one instead,
   * which the dispose callback counts.
   */
  #put(key: string, previous: readonly Entry[], next: readonly Entry[]): void {
    const held = this.#lru.peek(key) === previous ? previous.length : 0;
    this.#lru.set(key, next, { noUpdateTTL: true });
    if (this.#lru.peek(key) === next) this.#entries += next.length - held;
  }

  #withReason(reason: RemovalReason, action: () => void): void {
    this.#removal = reason;
    try {
      action();
    } finally {
      this.#removal = undefined;
    }
  }
}

/**
 * Bytes beyond its own a body too large for a slab may keep alive. undici
 * hands a body that came in one socket read over as a view of that read,
 * whose only other bytes are the response head. For a body this large those
 * are a small share, and a copy would be one more large allocation with a
 * hole left behind where the read was.
 */
export const BODY_SLACK_BYTES = 1024;

/** The buffer itself when it owns its memory (but for at most BODY_SLACK_BYTES), else a copy of exactly its bytes. For bodies not placed in slabs. */
export function ownBuffer(body: Buffer): Buffer {
  if (body.buffer.byteLength - body.byteLength <= BODY_SLACK_BYTES) return body;
  // allocUnsafeSlow: a buffer of its own, never a slice of Node's shared pool, which would pin a whole pool slab.
  const own = Buffer.allocUnsafeSlow(body.byteLength);
  body.copy(own);
  return own;
}

/** Keys a sweep looks at: a few milliseconds of work. */
const SWEEP_BUDGET = 20_000;

function allLive(variants: readonly Entry[], now: number): boolean {
  for (const entry of variants) if (entry.deleteAt <= now) return false;
  return true;
}

function sumSizes(variants: readonly Entry[]): number {
  let size = 0;
  for (const entry of variants) size += entry.size;
  return size;
}
