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
 * in each slab; once a slab that is no longer being filled holds less than
 * `compactBelow` of what was written into it, it is retired and its holders
 * are asked to move their bodies into the slab being filled (`relocate`).
 * So slabs stay at least that full: with 0.75, the bodies' memory is at most
 * a third more than the bytes held, plus the slab being filled.
 */

export interface SlabArenaOptions<T> {
  readonly slabBytes: number;
  /** Bodies larger than this are not placed in slabs. */
  readonly maxPlacedBytes: number;
  /** Share of a slab's written bytes under which it is retired. */
  readonly compactBelow: number;
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

/** Slab sizes for a tier of `maxSize` bytes: a sixteenth of it, within 64 KiB to 4 MiB; bodies up to an eighth of a slab are placed. */
export function slabSizesFor(maxSize: number): { slabBytes: number; maxPlacedBytes: number } {
  const slabBytes = Math.min(MAX_SLAB_BYTES, Math.max(MIN_SLAB_BYTES, Math.floor(maxSize / 16)));
  return { slabBytes, maxPlacedBytes: Math.floor(slabBytes / 8) };
}

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
  #filling: Slab<T> | undefined;
  #retired: T[] = [];
  readonly #totals: SlabStats = { slabs: 0, bytes: 0, usedBytes: 0, liveBytes: 0 };

  constructor(options: SlabArenaOptions<T>) {
    if (!(options.maxPlacedBytes <= options.slabBytes)) throw new RangeError('maxPlacedBytes must not exceed slabBytes');
    this.#options = options;
  }

  /** A copy of `bytes` in the slab being filled, or undefined when they are too large (or empty) to place. */
  place(bytes: Uint8Array): Buffer | undefined {
    const length = bytes.byteLength;
    if (length === 0 || length > this.#options.maxPlacedBytes) return undefined;
    let slab = this.#filling;
    if (slab === undefined || slab.used + length > slab.bytes.length) slab = this.#startSlab();
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
    slab.holders.push(holder);
    // Holders that let go stay listed until the slab is retired; when they outnumber those holding, the list is pruned.
    if (slab.holders.length > 64 && slab.holders.length > 2 * slab.count) slab.holders = slab.holders.filter(this.#options.isHeld);
    return true;
  }

  /** A holder let go of `body`. May retire its slab (see the class comment). */
  release(body: Buffer): void {
    const slab = this.#slabs.get(body.buffer);
    if (slab === undefined) return;
    slab.live -= body.length;
    slab.count--;
    this.#totals.liveBytes -= body.length;
    if (slab !== this.#filling) this.#retireIfSparse(slab);
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

  #startSlab(): Slab<T> {
    const previous = this.#filling;
    // allocUnsafeSlow: a buffer of its own (never Node's shared pool), left unfilled: every byte handed out is written first.
    const slab: Slab<T> = { bytes: Buffer.allocUnsafeSlow(this.#options.slabBytes), used: 0, live: 0, count: 0, holders: [] };
    this.#slabs.set(slab.bytes.buffer, slab);
    this.#totals.slabs++;
    this.#totals.bytes += slab.bytes.length;
    this.#filling = slab;
    if (previous !== undefined) this.#retireIfSparse(previous);
    return slab;
  }

  #retireIfSparse(slab: Slab<T>): void {
    if (slab.live >= slab.used * this.#options.compactBelow) return;
    this.#slabs.delete(slab.bytes.buffer);
    this.#totals.slabs--;
    this.#totals.bytes -= slab.bytes.length;
    this.#totals.usedBytes -= slab.used;
    this.#totals.liveBytes -= slab.live;
    if (slab.count <= 0) return;
    if (this.#retired.length === 0) queueMicrotask(() => this.#relocateRetired());
    for (const holder of slab.holders) this.#retired.push(holder);
  }

  #relocateRetired(): void {
    const holders = this.#retired.filter(this.#options.isHeld);
    this.#retired = [];
    if (holders.length > 0) this.#options.relocate(holders);
  }
}
