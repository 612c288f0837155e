import { describe, expect, it } from 'vitest';
import { entryWith, withBody, type Entry } from '../../proxy/cache/entry.js';
import { BODY_SLACK_BYTES, MemoryStore } from '../../proxy/store/memory.js';
import { seededRandom } from '../../scripts/bench/zipf.js';
import { storeContract, testEntry } from '../contract/store-contract.js';

storeContract('memory tier', (options) => new MemoryStore(options));

describe('memory tier body ownership', () => {
  // A tier of 1 MiB fills slabs of 64 KiB and places bodies up to 8 KiB in them (slabs.ts slabSizesFor).
  const store = () => new MemoryStore({ maxSize: 1024 * 1024, maxVariants: 4, clock: () => 1_000_000 });

  it('keeps a copy of a small body in a slab, not the larger read buffer it is a view of', () => {
    const read = Buffer.alloc(10_000, 0x41);
    read.write('HTTP/1.1 200 OK\r\n', 0);
    const body = read.subarray(2_000, 2_100);
    const memory = store();
    memory.set(testEntry('k', { body }));
    const stored = memory.get('k')![0]! as { body: Buffer };
    expect(stored.body.equals(body)).toBe(true);
    expect(stored.body.buffer).not.toBe(read.buffer);
    expect(stored.body.buffer.byteLength).toBe(64 * 1024);
  });

  it('places small bodies one after another in one slab', () => {
    const memory = store();
    memory.set(testEntry('a', { body: Buffer.from('first body') }));
    memory.set(testEntry('b', { body: Buffer.alloc(3_000, 0x61) }));
    const a = memory.get('a')![0]!.body as Buffer;
    const b = memory.get('b')![0]!.body as Buffer;
    expect(a.toString()).toBe('first body');
    expect(b.equals(Buffer.alloc(3_000, 0x61))).toBe(true);
    expect(b.buffer).toBe(a.buffer);
    expect(b.byteOffset).toBe(a.byteOffset + a.length);
  });

  it('keeps a body too large for a slab that is a view of a read holding little more (the response head) as it is', () => {
    // As undici hands over a 10 KiB body that came in one socket read: the read's other bytes are the head.
    const read = Buffer.alloc(204 + 10_240, 0x43);
    const body = read.subarray(204);
    const memory = store();
    memory.set(testEntry('k', { body }));
    const stored = memory.get('k')![0]!.body as Buffer;
    expect(stored.buffer).toBe(read.buffer);
    expect(stored.buffer.byteLength - stored.length).toBeLessThanOrEqual(BODY_SLACK_BYTES);
  });

  it('copies a body too large for a slab whose buffer holds more than BODY_SLACK_BYTES besides it', () => {
    const read = Buffer.alloc(BODY_SLACK_BYTES + 1 + 10_240, 0x44);
    const body = read.subarray(BODY_SLACK_BYTES + 1);
    const memory = store();
    memory.set(testEntry('k', { body }));
    const stored = memory.get('k')![0]!.body as Buffer;
    expect(stored.equals(body)).toBe(true);
    expect(stored.buffer.byteLength).toBe(10_240);
  });

  it('never keeps a slice of Node\'s shared buffer pool', () => {
    const pooled = Buffer.from('a small cached body');
    expect(pooled.buffer.byteLength).toBeGreaterThan(pooled.length);
    const memory = store();
    memory.set(testEntry('k', { body: pooled }));
    const stored = memory.get('k')![0]!.body as Buffer;
    expect(stored.toString()).toBe('a small cached body');
    expect(stored.buffer).not.toBe(pooled.buffer);
  });

  it('stores a large body that owns its buffer as it is, and reports the entry it holds to listeners', () => {
    const stored: unknown[] = [];
    const removed: unknown[] = [];
    const memory = new MemoryStore({ maxSize: 1024 * 1024, maxVariants: 4, clock: () => 1_000_000, listener: { onStore: (e) => stored.push(e), onRemove: (e) => removed.push(e) } });
    const large = testEntry('large', { body: Buffer.alloc(20_000, 0x42) });
    memory.set(large);
    expect(memory.get('large')![0]).toBe(large);
    const small = testEntry('small', { body: Buffer.alloc(5_000, 0x42) });
    memory.set(small);
    const held = memory.get('small')![0]!;
    expect(held).not.toBe(small);
    expect(stored).toEqual([large, held]);
    expect(stored[1]).toBe(held);
    memory.delete('large');
    memory.delete('small');
    expect(removed[0]).toBe(large);
    expect(removed[1]).toBe(held);
  });

  it('tells whoever shares an entry that it now holds a copy of it with its body in a slab', () => {
    const moves: [unknown, unknown][] = [];
    const memory = new MemoryStore({ maxSize: 1024 * 1024, maxVariants: 4, clock: () => 1_000_000, onMove: (from, to) => moves.push([from, to]) });
    const given = testEntry('k', { body: Buffer.alloc(5_000, 0x42) });
    memory.set(given);
    expect(moves).toEqual([[given, memory.get('k')![0]]]);
    expect(moves[0]![1]).toBe(memory.get('k')![0]);
  });

  it('moves the bodies still held out of the sparsest slabs once evictions leave too much unused, keeping their bytes, recency and count', async () => {
    const moves: [Entry, Entry][] = [];
    const memory = new MemoryStore({ maxSize: 1024 * 1024, maxVariants: 4, clock: () => 1_000_000, onMove: (from, to) => moves.push([from, to]) });
    // 4 KiB bodies: 16 fill a 64 KiB slab. 160 of them fill ten slabs.
    const bodyOf = (i: number) => Buffer.alloc(4_096, i);
    for (let i = 0; i < 160; i++) memory.set(testEntry(`k${i}`, { body: bodyOf(i) }));
    moves.length = 0;
    const slabOf = (key: string) => (memory.peek(key)![0]!.body as Buffer).buffer;
    const before = new Map([0, 16, 32, 48, 64, 80, 96, 112].map((i) => [`k${i}`, slabOf(`k${i}`)]));
    memory.get('k16'); // k16 becomes the most recently used
    const order = [...memory.keys()];
    // The first eight slabs keep one body each: 480 KiB unused, past a tenth of the slabs' bytes and two slabs more.
    const gone = new Set<string>();
    for (let i = 0; i < 128; i++) if (i % 16 !== 0) gone.add(`k${i}`);
    for (const key of gone) memory.delete(key);
    await new Promise((resolve) => setImmediate(resolve));
    expect(moves.length).toBeGreaterThan(0);
    for (const [from, to] of moves) {
      expect(memory.peek(from.key)![0]).toBe(to);
      expect((to.body as Buffer).buffer).not.toBe(before.get(from.key));
    }
    for (const [key] of before) expect((memory.peek(key)![0]!.body as Buffer).equals(bodyOf(Number(key.slice(1))))).toBe(true);
    expect([...memory.keys()]).toEqual(order.filter((key) => !gone.has(key)));
    expect(memory.stats().entries).toBe(40);
    const slabs = memory.slabStats();
    expect(slabs.liveBytes).toBe(40 * 4_096);
    // Unused: at most a tenth of the slabs' bytes, and two slabs more.
    expect(slabs.bytes - slabs.liveBytes).toBeLessThanOrEqual(0.1 * slabs.bytes + 2 * 64 * 1024);
  });

  it('keeps counting a body when a freshened entry with the same bytes replaces the slab\'s last holder', () => {
    const memory = new MemoryStore({ maxSize: 1024 * 1024, maxVariants: 4, clock: () => 1_000_000 });
    // 4 KiB bodies, 16 to a 64 KiB slab: the first slab drained to k0, which a 304 then freshens (a new entry, the same body buffer).
    for (let i = 0; i < 20; i++) memory.set(testEntry(`k${i}`, { body: Buffer.alloc(4_096, i) }));
    for (let i = 1; i < 16; i++) memory.delete(`k${i}`);
    const stale = memory.peek('k0')![0]!;
    memory.set(entryWith(stale, { storedAt: stale.storedAt + 1 }));
    const fresh = memory.peek('k0')![0]!;
    expect(fresh.body).toBe(stale.body);
    // Counted, in a slab the arena still tracks: had the replaced entry's release dropped the slab first, k0 would hold bytes nothing counts.
    expect(memory.slabStats()).toMatchObject({ slabs: 2, liveBytes: 5 * 4_096 });
    memory.delete('k0');
    expect(memory.slabStats()).toMatchObject({ slabs: 1, liveBytes: 4 * 4_096 });
  });

  it('removes a copied entry by identity with what a lookup returned', () => {
    const memory = store();
    const read = Buffer.alloc(4_096, 0x43);
    memory.set(testEntry('k', { body: read.subarray(10, 20) }));
    const found = memory.get('k')![0]!;
    memory.deleteVariant(found);
    expect(memory.get('k')).toBeUndefined();
  });

  it('keeps its entry count right through every kind of change, without walking the keys', () => {
    let now = 1_000_000;
    const memory = new MemoryStore({ maxSize: 20_000, maxVariants: 3, clock: () => now });
    const random = seededRandom(7);
    const pick = (n: number) => Math.floor(random() * n);
    const counted = () => [...memory.keys()].reduce((sum, key) => sum + (memory.peek(key)?.length ?? 0), 0);
    for (let step = 0; step < 5_000; step++) {
      const key = `k${pick(40)}`;
      const roll = random();
      if (roll < 0.6) {
        // Some too large for the tier: refused, and the key's old variants go with them.
        const bodyBytes = random() < 0.02 ? 30_000 : 50 + pick(3_000);
        memory.set(testEntry(key, { variant: `v${pick(5)}`, vary: ['x'], bodyBytes, deleteAt: now + pick(5_000) }));
      } else if (roll < 0.7) memory.delete(key);
      else if (roll < 0.8) memory.deleteVariantOf(key, `v${pick(5)}`);
      else if (roll < 0.9) memory.get(key);
      else if (roll < 0.95) memory.sweep(now);
      else now += pick(2_000);
      expect(memory.stats().entries, `after step ${step}`).toBe(counted());
    }
  });

  it('sweeps a bounded number of the least recently used keys at a time', () => {
    let now = 1_000_000;
    const memory = new MemoryStore({ maxSize: 64 * 1024 * 1024, maxVariants: 4, clock: () => now });
    for (let i = 0; i < 100; i++) memory.set(testEntry(`k${i}`, { bodyBytes: 10, deleteAt: now + 1_000 }));
    now += 2_000;
    // k0 is the least recently used; a budget of 30 judges k0..k29 and leaves the rest to their next read or to eviction.
    expect(memory.sweep(now, 30)).toBe(30);
    expect(memory.peek('k29')).toBeUndefined();
    expect(memory.peek('k30')).toBeDefined();
    expect(memory.sweep(now)).toBe(70);
    expect(memory.stats().entries).toBe(0);
  });
});
