import { describe, expect, it } from 'vitest';
import { SlabArena, slabSizesFor } from '../../proxy/store/slabs.js';

interface Holder {
  readonly name: string;
  body: Buffer;
  held: boolean;
}

/** An arena of 1 KiB slabs placing bodies up to 256 bytes, which records what it is asked to relocate. */
function arena(compactBelow = 0.75) {
  const relocations: string[][] = [];
  const slabs = new SlabArena<Holder>({
    slabBytes: 1024,
    maxPlacedBytes: 256,
    compactBelow,
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
  return { slabs, relocations, hold, letGo };
}

describe('slab arena', () => {
  it('sizes slabs as a sixteenth of the tier, within 64 KiB to 4 MiB, placing bodies up to an eighth of a slab', () => {
    expect(slabSizesFor(256 * 2 ** 20)).toEqual({ slabBytes: 4 * 2 ** 20, maxPlacedBytes: 512 * 1024 });
    expect(slabSizesFor(16 * 2 ** 20)).toEqual({ slabBytes: 2 ** 20, maxPlacedBytes: 128 * 1024 });
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

  it('asks the holders still holding to move once a slab no longer filled falls under the threshold, after the call that did it', async () => {
    const { relocations, hold, letGo, slabs } = arena();
    const first = [0, 1, 2, 3].map((i) => hold(`a${i}`, Buffer.alloc(250, i)));
    hold('b0', Buffer.alloc(250)); // the second slab is now the one filled
    letGo(first[0]!); // 750 of 1000 written: not under three quarters
    await Promise.resolve();
    expect(relocations).toEqual([]);
    letGo(first[1]!);
    expect(relocations).toEqual([]);
    expect(slabs.isPlaced(first[2]!.body)).toBe(false);
    await Promise.resolve();
    expect(relocations).toEqual([['a2', 'a3']]);
    // Retired: letting go of its views later counts nothing anywhere.
    letGo(first[2]!);
    expect(slabs.stats()).toEqual({ slabs: 1, bytes: 1024, usedBytes: 250, liveBytes: 250 });
  });

  it('never retires the slab being filled, however sparse', async () => {
    const { relocations, hold, letGo, slabs } = arena();
    const held = [0, 1, 2].map((i) => hold(`a${i}`, Buffer.alloc(100, i)));
    letGo(held[0]!);
    letGo(held[1]!);
    await Promise.resolve();
    expect(relocations).toEqual([]);
    expect(slabs.isPlaced(held[2]!.body)).toBe(true);
  });

  it('retires a slab left sparse when a new one starts', async () => {
    const { relocations, hold, letGo } = arena();
    const held = [0, 1, 2, 3].map((i) => hold(`a${i}`, Buffer.alloc(i < 3 ? 200 : 250, i)));
    for (const holder of held.slice(0, 3)) letGo(holder);
    await Promise.resolve();
    expect(relocations).toEqual([]); // still the slab being filled
    hold('b0', Buffer.alloc(200)); // 850 + 200 does not fit: a new slab; the old one holds 250 of 850
    await Promise.resolve();
    expect(relocations).toEqual([['a3']]);
  });

  it('asks no one to move when the holders of a retired slab let go before the move', async () => {
    const { relocations, hold, letGo, slabs } = arena();
    const held = [0, 1, 2, 3].map((i) => hold(`a${i}`, Buffer.alloc(250, i)));
    hold('b0', Buffer.alloc(250));
    for (const holder of held) letGo(holder);
    await Promise.resolve();
    expect(relocations).toEqual([]);
    expect(slabs.stats()).toMatchObject({ slabs: 1, liveBytes: 250 });
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
