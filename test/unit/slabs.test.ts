import { describe, expect, it } from 'vitest';
import { SlabArena, slabSizesFor } from '../../proxy/store/slabs.js';

interface Holder {
  readonly name: string;
  body: Buffer;
  held: boolean;
}

/** An arena of 1 KiB slabs placing bodies up to 256 bytes, a quarter of its bytes allowed unused (beyond two slabs), which records what it is asked to relocate. */
function arena() {
  const relocations: string[][] = [];
  const slabs = new SlabArena<Holder>({
    slabBytes: 1024,
    maxPlacedBytes: 256,
    maxWaste: 0.25,
    isHeld: (holder) => holder.held,
    relocate: (holders) => relocations.push(holders.map((holder) => holder.name)),
  });
  const hold = (name: string, bytes: Buffer): Holder => {
    const holder = { name, body: slabs.place(bytes)!, held: true };
    expect(slabs.hold(holder.body, holder)).toBe(true);
    return holder;
  };
  const letGo = (holder: Holder) => {
    holder.held = false;
    slabs.release(holder.body);
  };
  /** Fills `count` slabs with four 250-byte bodies each, named s<slab>_<n>; the last is the slab being filled. */
  const fill = (count: number): Holder[][] => Array.from({ length: count }, (_, slab) => [0, 1, 2, 3].map((n) => hold(`s${slab}_${n}`, Buffer.alloc(250, slab))));
  return { slabs, relocations, hold, letGo, fill };
}

describe('slab arena', () => {
  it('sizes slabs as a sixty-fourth of the tier, within 64 KiB to 4 MiB, placing bodies up to 64 KiB and an eighth of a slab', () => {
    expect(slabSizesFor(1024 * 2 ** 20)).toEqual({ slabBytes: 4 * 2 ** 20, maxPlacedBytes: 64 * 1024 });
    expect(slabSizesFor(256 * 2 ** 20)).toEqual({ slabBytes: 4 * 2 ** 20, maxPlacedBytes: 64 * 1024 });
    expect(slabSizesFor(64 * 2 ** 20)).toEqual({ slabBytes: 2 ** 20, maxPlacedBytes: 64 * 1024 });
    expect(slabSizesFor(16 * 2 ** 20)).toEqual({ slabBytes: 256 * 1024, maxPlacedBytes: 32 * 1024 });
    expect(slabSizesFor(1000)).toEqual({ slabBytes: 64 * 1024, maxPlacedBytes: 8 * 1024 });
  });

  it('places a copy of the bytes, one after another in a slab', () => {
    const { slabs } = arena();
    const source = Buffer.from('hello');
    const first = slabs.place(source)!;
    const second = slabs.place(Buffer.from('world'))!;
    source.write('HELLO');
    expect(first.toString()).toBe('hello');
    expect(second.toString()).toBe('world');
    expect(second.buffer).toBe(first.buffer);
    expect(second.byteOffset).toBe(first.byteOffset + 5);
    expect(slabs.isPlaced(first)).toBe(true);
    expect(slabs.isPlaced(source)).toBe(false);
  });

  it('does not place empty bodies or bodies over the limit, and counts nothing for a buffer of its own', () => {
    const { slabs } = arena();
    expect(slabs.place(Buffer.alloc(0))).toBeUndefined();
    expect(slabs.place(Buffer.alloc(257))).toBeUndefined();
    expect(slabs.place(Buffer.alloc(256))).toHaveLength(256);
    expect(slabs.hold(Buffer.alloc(10), { name: 'own', body: Buffer.alloc(10), held: true })).toBe(false);
    expect(slabs.stats()).toEqual({ slabs: 1, bytes: 1024, usedBytes: 256, liveBytes: 0 });
  });

  it('starts a new slab when the body does not fit in what is left', () => {
    const { slabs } = arena();
    const views = [0, 1, 2, 3, 4].map((i) => slabs.place(Buffer.alloc(250, i))!);
    expect(views[3]!.buffer).toBe(views[0]!.buffer);
    expect(views[4]!.buffer).not.toBe(views[0]!.buffer);
    expect(views[4]!.byteOffset).toBe(0);
    expect(views.every((view, i) => view.equals(Buffer.alloc(250, i)))).toBe(true);
  });

  it('drops a slab no longer filled once nothing in it is held, asking no one to move', async () => {
    const { relocations, letGo, fill, slabs } = arena();
    const [first] = fill(2);
    for (const holder of first!) letGo(holder);
    await Promise.resolve();
    expect(relocations).toEqual([]);
    expect(slabs.isPlaced(first![3]!.body)).toBe(false);
    expect(slabs.stats()).toEqual({ slabs: 1, bytes: 1024, usedBytes: 1000, liveBytes: 1000 });
  });

  it('moves nothing while the unused bytes stay within the allowance, then asks the holders of the sparsest slab to move, after the call that did it', async () => {
    const { relocations, letGo, fill, slabs } = arena();
    // 12 slabs of 1024 bytes: a quarter of them and two slabs more, 5,120 bytes, may be unused; 288 are (each slab's last 24).
    const filled = fill(12);
    // Each slab drained to one body leaves 750 more unused: six of them stay within the allowance (4,788).
    for (const slab of filled.slice(0, 6)) for (const holder of slab.slice(0, 3)) letGo(holder);
    letGo(filled[6]![0]!);
    await Promise.resolve();
    expect(relocations).toEqual([]);
    expect(slabs.stats().slabs).toBe(12);
    // 5,288 unused: the sparsest slab (the first of those holding 250 bytes) is retired, its holder asked to move once the call is over.
    letGo(filled[6]![1]!);
    expect(relocations).toEqual([]);
    expect(slabs.isPlaced(filled[0]![3]!.body)).toBe(false);
    await Promise.resolve();
    expect(relocations).toEqual([['s0_3']]);
    expect(slabs.stats().slabs).toBe(11);
  });

  it('never retires a slab being filled, however sparse', async () => {
    const { relocations, hold, letGo, slabs } = arena();
    const held = [0, 1, 2].map((i) => hold(`a${i}`, Buffer.alloc(100, i)));
    letGo(held[0]!);
    letGo(held[1]!);
    await Promise.resolve();
    expect(relocations).toEqual([]);
    expect(slabs.isPlaced(held[2]!.body)).toBe(true);
  });

  it('places moved bodies in a slab of their own, apart from new ones', () => {
    const { slabs } = arena();
    const fresh = slabs.place(Buffer.from('new'))!;
    const moved = slabs.place(Buffer.from('moved'), 'moved')!;
    const next = slabs.place(Buffer.from('newer'))!;
    expect(moved.buffer).not.toBe(fresh.buffer);
    expect(next.buffer).toBe(fresh.buffer);
    expect(moved.toString()).toBe('moved');
    expect(slabs.stats().slabs).toBe(2);
  });

  it('asks no one to move when the holders of a retired slab let go before the move', async () => {
    const { relocations, letGo, fill } = arena();
    const filled = fill(12);
    for (const slab of filled.slice(0, 6)) for (const holder of slab.slice(0, 3)) letGo(holder);
    letGo(filled[6]![0]!);
    letGo(filled[6]![1]!); // retires the first slab
    letGo(filled[0]![3]!);
    await Promise.resolve();
    expect(relocations).toEqual([]);
  });

  it('lists a holder counted before it holds (pruning the list first), so it is asked to move with the others', () => {
    const { slabs } = arena();
    const body = slabs.place(Buffer.alloc(10))!;
    const earlier = Array.from({ length: 70 }, (_, i) => ({ name: `h${i}`, body, held: true }));
    for (const holder of earlier) slabs.hold(body, holder);
    for (const holder of earlier.slice(0, 69)) {
      holder.held = false;
      slabs.release(body);
    }
    // Counted first, in its place only afterwards (as the memory tier does): the prune must not drop it.
    const next = { name: 'next', body, held: false };
    slabs.hold(body, next);
    next.held = true;
    expect(slabs.listedHolders()).toBe(2);
  });

  it('moves the holders of a retired slab a batch at a time, the rest on later turns of the event loop', async () => {
    const relocations: number[] = [];
    const slabs = new SlabArena<Holder>({ slabBytes: 64 * 1024, maxPlacedBytes: 1024, maxWaste: 0.25, isHeld: (holder) => holder.held, relocate: (holders) => relocations.push(holders.length) });
    // Six slabs of 16,384 four-byte bodies (the sixth being filled): the first keeps 3,000, the next four 3,500 each,
    // which passes the allowance while the fifth drains: the first, the sparsest, is retired.
    const slabsOf = Array.from({ length: 6 }, (_, slab) => Array.from({ length: 16_384 }, (_, n) => {
      const holder = { name: `s${slab}_${n}`, body: slabs.place(Buffer.alloc(4, slab))!, held: true };
      slabs.hold(holder.body, holder);
      return holder;
    }));
    const letGo = (holder: Holder) => {
      holder.held = false;
      slabs.release(holder.body);
    };
    for (const holder of slabsOf[0]!.slice(3_000)) letGo(holder);
    for (const slab of slabsOf.slice(1, 5)) for (const holder of slab.slice(3_500)) letGo(holder);
    await Promise.resolve();
    expect(relocations).toEqual([1024]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(relocations).toEqual([1024, 1024]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(relocations.slice(0, 3)).toEqual([1024, 1024, 952]);
  });

  it('keeps its list of holders from growing past twice those holding when one body is held again and again', () => {
    const { slabs } = arena();
    const body = slabs.place(Buffer.alloc(10))!;
    let current: Holder | undefined;
    for (let i = 0; i < 1000; i++) {
      // A freshened entry: the same bytes held by a new holder, the old one letting go.
      const next = { name: `h${i}`, body, held: true };
      slabs.hold(body, next);
      if (current !== undefined) {
        current.held = false;
        slabs.release(body);
      }
      current = next;
    }
    expect(slabs.stats()).toMatchObject({ liveBytes: 10 });
    expect(slabs.listedHolders()).toBeLessThanOrEqual(65);
  });
});
