import { isFileBody, readFileBody } from '../cache/body.js';
import { withBody, type Entry } from '../cache/entry.js';
import { DiskStore, type DiskStoreOptions } from './disk.js';
import { MemoryStore } from './memory.js';
import type { BodyWriter, StoreListener, StreamingStore } from './store.js';

export interface TieredStoreOptions {
  memory: { maxSize: number; maxObjectSize: number };
  disk: Pick<DiskStoreOptions, 'dir' | 'maxSize' | 'maxObjectSize' | 'shared' | 'claimRetryMs'>;
  maxVariants: number;
  clock: () => number;
  listener?: StoreListener;
  log?: (message: string) => void;
  onError?: (error: unknown, context: string) => void;
}

/**
 * Memory over disk. The disk tier holds every entry and is the one that
 * speaks to listeners; memory keeps the bytes of entries the disk holds,
 * so memory eviction loses nothing and needs no event. A variant in both
 * tiers is one entry object, held by both (DiskStore share/unshare): when
 * memory lets go of it, the disk index takes a copy whose body is the file. A key is answered
 * from memory only when memory has all of the key's variants the disk has;
 * otherwise the disk answers (bodies streamed from files) and the variants
 * small enough for memory are read into it in the background.
 */
export class TieredStore implements StreamingStore {
  readonly memory: MemoryStore;
  readonly disk: DiskStore;
  readonly #memoryObjectLimit: number;
  readonly #onError: ((error: unknown, context: string) => void) | undefined;
  /** Variants being read into memory (key + "\n" + variant). */
  readonly #promoting = new Set<string>();

  constructor(options: TieredStoreOptions) {
    const listener = options.listener;
    this.#memoryObjectLimit = Math.min(options.memory.maxObjectSize, options.memory.maxSize);
    this.#onError = options.onError;
    this.memory = new MemoryStore({
      maxSize: options.memory.maxSize,
      maxVariants: options.maxVariants,
      clock: options.clock,
      // Whatever memory lets go of (evicted, expired, replaced, deleted), the disk index must not keep its bytes alive.
      listener: { onRemove: (entry) => this.disk.unshare(entry) },
      // A shared entry whose bytes memory moved (slab compaction): the index follows, so it never keeps a retired slab alive.
      onMove: (from, to) => this.disk.replaceShared(from, to),
    });
    this.disk = new DiskStore({
      ...options.disk,
      maxVariants: options.maxVariants,
      clock: options.clock,
      log: options.log,
      onError: options.onError,
      listener: {
        onStore: (entry) => listener?.onStore?.(entry),
        onRemove: (entry, reason) => {
          // Whatever leaves the disk leaves memory too, so memory never answers for an entry that is gone.
          this.memory.deleteVariantOf(entry.key, entry.variant);
          listener?.onRemove?.(entry, reason);
        },
      },
    });
  }

  get maxObjectSize(): number {
    return this.disk.maxObjectSize;
  }

  /** Settles when the disk tier's boot scan is done (requests are served before that). */
  get ready(): Promise<void> {
    return this.disk.ready;
  }

  get(key: string): readonly Entry[] | undefined {
    const inMemory = this.memory.get(key);
    if (inMemory !== undefined && this.disk.touchIfHolding(key, inMemory.length)) return inMemory;
    const onDisk = this.disk.get(key);
    if (onDisk === undefined) return undefined;
    return onDisk.map((entry) => inMemory?.find((held) => held.variant === entry.variant) ?? this.#promote(entry));
  }

  async set(given: Entry): Promise<void> {
    // The bytes as the memory tier keeps them (a slab copy); the disk tier must know the same buffer, so a later set() of it is metadata only.
    // Only a body memory may keep is copied: a copy nothing will hold would leave dead bytes in a slab.
    const forMemory = Buffer.isBuffer(given.body) && this.#fitsMemory(given);
    const entry = forMemory ? withBody(given, this.memory.own(given.body as Buffer)) : given;
    const indexed = await this.disk.store(entry, forMemory);
    // Another write or a delete may have come first while the disk was written.
    // A copy other than this entry won (another worker's later one): its bytes are its own file's, not these, so
    // memory waits for a read to promote it rather than pairing its metadata with this body.
    if (indexed !== entry || !forMemory || !this.disk.holds(entry)) return;
    this.#keepInMemory(entry);
  }

  delete(key: string): number {
    const removed = this.disk.delete(key);
    this.memory.delete(key);
    return removed;
  }

  deleteVariant(entry: Entry): void {
    this.disk.deleteVariant(entry);
    this.memory.deleteVariantOf(entry.key, entry.variant);
  }

  keys(): Iterable<string> {
    return this.disk.keys();
  }

  sweep(now: number): number {
    this.memory.sweep(now);
    return this.disk.sweep(now);
  }

  stats(): { entries: number; bytes: number; maxBytes: number } {
    return this.disk.stats();
  }

  createBodyWriter(): BodyWriter | undefined {
    return this.disk.createBodyWriter();
  }

  async close(): Promise<void> {
    this.memory.close();
    await this.disk.close();
  }

  /** Puts an entry the disk index shares into memory; if memory does not keep it (too large), the index stops sharing it. */
  #keepInMemory(entry: Entry): void {
    this.memory.set(entry);
    if (this.memory.peek(entry.key)?.includes(entry) !== true) this.disk.unshare(entry);
  }

  /** Whether the memory tier would keep this entry: its body within the object limit, its charge within the tier. Nothing else is copied into a slab. */
  #fitsMemory(entry: Entry): boolean {
    return entry.body.length <= this.#memoryObjectLimit && entry.size <= this.memory.maxSize;
  }

  /** Reads a disk entry's body into memory in the background, when it fits the memory tier's object limit. */
  #promote(entry: Entry): Entry {
    const body = entry.body;
    if (!isFileBody(body) || !this.#fitsMemory(entry)) return entry;
    const id = `${entry.key}\n${entry.variant}`;
    if (this.#promoting.has(id)) return entry;
    this.#promoting.add(id);
    readFileBody(body)
      .then((bytes) => {
        // Only if the disk still holds this very entry: a newer write must not be shadowed by an older body.
        if (!this.disk.holds(entry)) return;
        const shared = this.disk.share(entry, this.memory.own(bytes));
        if (shared !== undefined) this.#keepInMemory(shared);
      })
      .catch((error: unknown) => this.#onError?.(error, 'promote from disk'))
      .finally(() => this.#promoting.delete(id));
    return entry;
  }
}
