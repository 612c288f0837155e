/**
 * Slab storage for the memory tier's bodies. A Buffer of its own costs
 * about 430 bytes beyond its bytes (its ArrayBuffer, the native backing
 * store and malloc's bookkeeping), and a body kept as a view of the socket
 * read it arrived in also keeps that read's response head alive. Bodies up
 * to `maxPlacedBytes` are instead copied one after another into large
 * slabs, each body a view of its slab: about 90 bytes each.
 *
 * A slab is freed only when nothing holds a view of it, so one long-lived
 * body could keep a whole slab alive. The arena counts the bytes still held
 * in each slab. A slab no longer filled that holds nothing is dropped at
 * once. With least-recently-used eviction that is the common case: bodies
 * stored together age together, and a slab drains as its bodies reach the
 * end of the LRU. Bodies that stay (hot ones) leave slabs part-empty; once
 * the bytes unused across the slabs pass `maxWaste` of all slab bytes (two
 * slabs' worth more are allowed: those being filled), the sparsest slab is
 * retired and its holders are asked to move their bodies (`relocate`) into
 * a slab kept for moved bodies. So slabs take at most 1 / (1 - maxWaste)
 * of the bytes held, plus two slabs, and a body is moved only when it
 * outlives most of the bodies stored with it.
 */

export interface SlabArenaOptions<T> {
  readonly slabBytes: number;
  /** Bodies larger than this are not placed in slabs. */
  readonly maxPlacedBytes: number;
  /** Share of all slab bytes that may be unused (beyond the two slabs being filled) before the sparsest slab is compacted. */
  readonly maxWaste: number;
  /** Whether a holder registered with `hold` still holds its view. */
  readonly isHeld: (holder: T) => boolean;
  /** Called (from a microtask, never inside an arena call) with the holders of a retired slab; those still holding move their bodies. */
  readonly relocate: (holders: readonly T[]) => void;
}

interface Slab<T> {
  readonly bytes: Buffer;
  /** Bytes written into the slab so far. */
  used: number;
  /** Bytes of the views still held, and how many views. */
  live: number;
  count: number;
  /** Whoever was handed a view of this slab (some may have let go since). */
  holders: T[];
}

const MIN_SLAB_BYTES = 64 * 1024;
const MAX_SLAB_BYTES = 4 * 1024 * 1024;
/** Past this a body's own buffer costs a negligible share of it, and a large body in a slab would make moves and a slow client's hold on a retired slab costlier. */
const MAX_PLACED_BYTES = 64 * 1024;
/** Holders moved per turn of the event loop. */
const MOVE_BATCH = 1024;

/** Slab sizes for a tier of `maxSize` bytes: a sixty-fourth of it, within 64 KiB to 4 MiB (so the slabs being filled are a small share of a small tier); bodies up to 64 KiB, and at most an eighth of a slab, are placed. */
export function slabSizesFor(maxSize: number): { slabBytes: number; maxPlacedBytes: number } {
  const slabBytes = Math.min(MAX_SLAB_BYTES, Math.max(MIN_SLAB_BYTES, Math.floor(maxSize / 64)));
  return { slabBytes, maxPlacedBytes: Math.min(MAX_PLACED_BYTES, Math.floor(slabBytes / 8)) };
}

export type SlabKind = 'fresh' | 'moved';

export interface SlabStats {
  slabs: number;
  bytes: number;
  usedBytes: number;
  liveBytes: number;
}

export class SlabArena<T> {
  readonly #options: SlabArenaOptions<T>;
  /** Live slabs by their ArrayBuffer (a view's `.buffer`); retired slabs are not here. */
  readonly #slabs = new Map<ArrayBufferLike, Slab<T>>();
  /** The slab new bodies go into, and the one bodies moved out of retired slabs go into. */
  readonly #filling: { fresh: Slab<T> | undefined; moved: Slab<T> | undefined } = { fresh: undefined, moved: undefined };
  #retired: T[] = [];
  readonly #totals: SlabStats = { slabs: 0, bytes: 0, usedBytes: 0, liveBytes: 0 };

  constructor(options: SlabArenaOptions<T>) {
    if (!(options.maxPlacedBytes <= options.slabBytes)) throw new RangeError('maxPlacedBytes must not exceed slabBytes');
    this.#options = options;
  }

  /**
   * A copy of `bytes` in a slab being filled, or undefined when they are too
   * large (or empty) to place. Bodies moved out of a retired slab (`moved`)
   * go into a slab of their own: most of them are old and soon evicted, and
   * mixed in with new bodies they would leave those slabs part-empty,
   * to be compacted in turn (with least-recently-used eviction, every body
   * was then moved two or three times).
   */
  place(bytes: Uint8Array, kind: SlabKind = 'fresh'): Buffer | undefined {
    const length = bytes.byteLength;
    if (length === 0 || length > this.#options.maxPlacedBytes) return undefined;
    let slab = this.#filling[kind];
    if (slab === undefined || slab.used + length > slab.bytes.length) slab = this.#startSlab(kind);
    const at = slab.used;
    slab.bytes.set(bytes, at);
    slab.used += length;
    this.#totals.usedBytes += length;
    return slab.bytes.subarray(at, at + length);
  }

  /** Whether `body` is a view of a live slab (placing it again would only copy it). */
  isPlaced(body: Buffer): boolean {
    return this.#slabs.has(body.buffer);
  }

  /** Counts `body` as held by `holder`. False when it is not a view of a live slab (nothing is counted). */
  hold(body: Buffer, holder: T): boolean {
    const slab = this.#slabs.get(body.buffer);
    if (slab === undefined) return false;
    slab.live += body.length;
    slab.count++;
    this.#totals.liveBytes += body.length;
    // Holders that let go stay listed until the slab is retired; when they outnumber those holding, the list is pruned,
    // before this holder is listed: it may not hold yet (a holder is counted before it takes its place).
    if (slab.holders.length >= 64 && slab.holders.length >= 2 * slab.count) slab.holders = slab.holders.filter(this.#options.isHeld);
    slab.holders.push(holder);
    return true;
  }

  /** A holder let go of `body`. May drop its slab, or compact the sparsest one (see the class comment). */
  release(body: Buffer): void {
    const slab = this.#slabs.get(body.buffer);
    if (slab === undefined) return;
    slab.live -= body.length;
    slab.count--;
    this.#totals.liveBytes -= body.length;
    if (this.#isFilling(slab)) return;
    if (slab.count <= 0) this.#retire(slab);
    else this.#compactIfWasteful();
  }

  /** Live slabs: how many, their bytes, and the bytes written and still held in them. Kept up to date as they change, for scrapes. */
  stats(): SlabStats {
    return { ...this.#totals };
  }

  /** Holders listed across the live slabs (those holding and some that let go): a walk over the slabs. */
  listedHolders(): number {
    let listed = 0;
    for (const slab of this.#slabs.values()) listed += slab.holders.length;
    return listed;
  }

  #startSlab(kind: SlabKind): Slab<T> {
    const previous = this.#filling[kind];
    // allocUnsafeSlow: a buffer of its own (never Node's shared pool), left unfilled: every byte handed out is written first.
    const slab: Slab<T> = { bytes: Buffer.allocUnsafeSlow(this.#options.slabBytes), used: 0, live: 0, count: 0, holders: [] };
    this.#slabs.set(slab.bytes.buffer, slab);
    this.#totals.slabs++;
    this.#totals.bytes += slab.bytes.length;
    this.#filling[kind] = slab;
    if (previous !== undefined && previous.count <= 0) this.#retire(previous);
    return slab;
  }

  #isFilling(slab: Slab<T>): boolean {
    return slab === this.#filling.fresh || slab === this.#filling.moved;
  }

  #wasteful(): boolean {
    const unused = this.#totals.bytes - this.#totals.liveBytes;
    return unused > this.#options.maxWaste * this.#totals.bytes + 2 * this.#options.slabBytes;
  }

  /** The slab not being filled that holds the smallest share of its bytes (a walk over the slabs, only when compaction is due). */
  #sparsest(): Slab<T> | undefined {
    let sparsest: Slab<T> | undefined;
    for (const slab of this.#slabs.values()) {
      if (!this.#isFilling(slab) && (sparsest === undefined || slab.live < sparsest.live)) sparsest = slab;
    }
    return sparsest;
  }

  /** Drops a slab from the arena; whoever still holds views of it is asked to move. */
  #retire(slab: Slab<T>): void {
    this.#slabs.delete(slab.bytes.buffer);
    this.#totals.slabs--;
    this.#totals.bytes -= slab.bytes.length;
    this.#totals.usedBytes -= slab.used;
    this.#totals.liveBytes -= slab.live;
    if (slab.count <= 0) return;
    if (this.#retired.length === 0) queueMicrotask(() => this.#relocateRetired());
    for (const holder of slab.holders) this.#retired.push(holder);
  }

  /** Moves the holders of retired slabs, MOVE_BATCH at a time: a slab of small bodies holds tens of thousands, and moving them in one go would hold up the event loop for tens of milliseconds. */
  #relocateRetired(): void {
    const holders = this.#retired.splice(0, MOVE_BATCH).filter(this.#options.isHeld);
    if (this.#retired.length > 0) setImmediate(() => this.#relocateRetired());
    if (holders.length > 0) this.#options.relocate(holders);
    if (this.#retired.length > 0) return;
    // The moved bodies may have started a slab, whose unused bytes were not counted when the retired one was chosen.
    this.#compactIfWasteful();
  }

  #compactIfWasteful(): void {
    if (!this.#wasteful()) return;
    const sparsest = this.#sparsest();
    if (sparsest !== undefined) this.#retire(sparsest);
  }
}
