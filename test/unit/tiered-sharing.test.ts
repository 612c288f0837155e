import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bodyBytes, isFileBody } from '../../proxy/cache/body.js';
import { entryWith, withBody } from '../../proxy/cache/entry.js';
import { TagIndex } from '../../purge/tag-index.js';
import { TieredStore } from '../../proxy/store/tiered.js';
import { testEntry } from '../contract/store-contract.js';
import { tempDir } from '../helpers/tempdir.js';

const root = tempDir('lacquer-tiered-sharing-');
let dirs = 0;

/** A tiered store whose memory tier holds one 100-byte test entry (612 bytes charged) at a time. */
function tiered(memoryBytes = 1000): TieredStore {
  return new TieredStore({
    memory: { maxSize: memoryBytes, maxObjectSize: memoryBytes },
    disk: { dir: join(root, String(dirs++)), maxSize: 1 << 20, maxObjectSize: 1 << 20 },
    maxVariants: 4,
    clock: () => 1_000_000,
  });
}

describe('tiered store: one entry object per variant held in both tiers', () => {
  it('gives the disk index the same object the memory tier holds, not a second copy of its metadata', async () => {
    const store = tiered();
    await store.set(testEntry('k', { etag: '"v1"' }));
    const inMemory = store.memory.peek('k')![0]!;
    expect(Buffer.isBuffer(inMemory.body)).toBe(true);
    expect(store.disk.current('k', '')).toBe(inMemory);
    await store.close();
  });

  it('lets go of the bytes in the disk index once memory evicts the entry: the index then keeps its body as the file', async () => {
    const store = tiered();
    await store.set(testEntry('a', { etag: '"a"', body: Buffer.from('bytes of a') }));
    const a = store.memory.peek('a')![0]!;
    await store.set(testEntry('b'));
    expect(store.memory.peek('a')).toBeUndefined();

    const onDisk = store.disk.current('a', '')!;
    expect(onDisk).not.toBe(a);
    expect(isFileBody(onDisk.body)).toBe(true);
    expect(onDisk).toMatchObject({ key: 'a', etag: '"a"', storedAt: a.storedAt, deleteAt: a.deleteAt });
    expect((await bodyBytes(onDisk.body)).toString()).toBe('bytes of a');
    // The one still in memory is still shared.
    expect(store.disk.current('b', '')).toBe(store.memory.peek('b')![0]);
    await store.close();
  });

  it('follows the memory tier when it moves a shared entry out of a sparse slab', async () => {
    // 1 MiB of memory: 64 KiB slabs, 16 bodies of 4 KiB each; ten slabs filled, then eight drained to one body each.
    const store = tiered(1 << 20);
    const bodyOf = (i: number) => Buffer.alloc(4_096, i);
    for (let i = 0; i < 160; i++) await store.set(testEntry(`k${i}`, { body: bodyOf(i) }));
    const before = store.memory.peek('k0')![0]!;
    expect(store.disk.current('k0', '')).toBe(before);
    for (let i = 0; i < 128; i++) if (i % 16 !== 0) store.delete(`k${i}`);
    await Promise.resolve();
    // The first slab is the sparsest (the first of several holding one body): compacted first.
    const moved = store.memory.peek('k0')![0]!;
    expect(moved).not.toBe(before);
    expect((moved.body as Buffer).buffer).not.toBe((before.body as Buffer).buffer);
    expect(store.disk.current('k0', '')).toBe(moved);
    expect(store.get('k0')![0]).toBe(moved);
    expect((await bodyBytes(moved.body)).equals(bodyOf(0))).toBe(true);
    await store.close();
  });

  it('copies into slabs only bodies the memory tier may keep', async () => {
    const store = new TieredStore({
      memory: { maxSize: 1 << 20, maxObjectSize: 1024 },
      disk: { dir: join(root, String(dirs++)), maxSize: 1 << 20, maxObjectSize: 1 << 20 },
      maxVariants: 4,
      clock: () => 1_000_000,
    });
    await store.set(testEntry('small', { body: Buffer.alloc(500, 1) }));
    for (let i = 0; i < 20; i++) await store.set(testEntry(`large${i}`, { body: Buffer.alloc(5_000, 2) }));
    expect(store.memory.slabStats()).toMatchObject({ usedBytes: 500, liveBytes: 500 });
    expect(isFileBody(store.disk.current('large0', '')!.body)).toBe(true);
    await store.close();
  });

  it('reads back into memory no entry the memory tier would refuse', async () => {
    const store = tiered();
    await store.set(testEntry('big-charge', { size: 5000 }));
    // A control that does fit, on disk only: once it is read back in, so would the other have been.
    await store.set(testEntry('fits', { body: Buffer.from('fits') }));
    store.memory.delete('fits');
    const usedBefore = store.memory.slabStats().usedBytes;
    expect(store.get('big-charge')).toHaveLength(1);
    expect(store.get('fits')).toHaveLength(1);
    await expect.poll(() => store.memory.peek('fits')).toBeDefined();
    expect(store.memory.peek('big-charge')).toBeUndefined();
    expect(store.memory.slabStats().usedBytes - usedBefore).toBe(4);
    await store.close();
  });

  it('writes no second body file for a variant stored again with the same bytes in another buffer', async () => {
    const dir = join(root, String(dirs++));
    const store = new TieredStore({ memory: { maxSize: 1 << 20, maxObjectSize: 1 << 20 }, disk: { dir, maxSize: 1 << 20, maxObjectSize: 1 << 20 }, maxVariants: 4, clock: () => 1_000_000 });
    const bodyFiles = () => (readdirSync(dir, { recursive: true }) as string[]).filter((name) => name.endsWith('.body')).length;
    await store.set(testEntry('k', { body: Buffer.alloc(4_096, 7) }));
    expect(bodyFiles()).toBe(1);
    const stored = store.memory.peek('k')![0]!;
    // As after a move out of a sparse slab, or an origin answering anew with the same body: equal bytes, another buffer.
    await store.set(entryWith(stored, { body: Buffer.alloc(4_096, 7), storedAt: stored.storedAt + 1 }));
    expect(bodyFiles()).toBe(1);
    await store.set(entryWith(stored, { body: Buffer.alloc(4_096, 8), storedAt: stored.storedAt + 2 }));
    expect((await bodyBytes(store.get('k')![0]!.body)).equals(Buffer.alloc(4_096, 8))).toBe(true);
    await store.close();
  });

  it('indexes an entry memory refuses (charged more than the memory tier holds) with its file body', async () => {
    const store = tiered();
    await store.set(testEntry('big-charge', { size: 5000 }));
    expect(store.memory.peek('big-charge')).toBeUndefined();
    expect(isFileBody(store.disk.current('big-charge', '')!.body)).toBe(true);
    await store.close();
  });

  it('shares an entry read back from disk into memory', async () => {
    const store = tiered();
    await store.set(testEntry('k'));
    store.memory.delete('k');
    expect(isFileBody(store.disk.current('k', '')!.body)).toBe(true);

    expect(isFileBody(store.get('k')![0]!.body)).toBe(true);
    await expect.poll(() => store.memory.peek('k')?.length ?? 0, { timeout: 10_000 }).toBe(1);
    expect(store.disk.current('k', '')).toBe(store.memory.peek('k')![0]);
    await store.close();
  });
});

describe('tag index', () => {
  it('keeps no reference to the entries it indexes (a memory entry there would keep its body alive)', () => {
    const index = new TagIndex();
    const entry = testEntry('k', { tags: ['t'] });
    index.onStore(entry);
    const [id] = index.ids('t');
    expect(Object.values(index.ref(id!)!)).not.toContain(entry);
    // And still tells a late removal of a replaced copy from the current one.
    index.onRemove(entryWith(entry, { storedAt: entry.storedAt - 1 }), 'replace');
    expect(index.ids('t')).toEqual([id]);
    index.onRemove(entryWith(entry, {}), 'evict');
    expect(index.ids('t')).toEqual([]);
  });
});
