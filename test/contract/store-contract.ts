import { describe, expect, it } from 'vitest';
import { bodyBytes } from '../../proxy/cache/body.js';
import { ENTRY_OVERHEAD_BYTES, type Entry } from '../../proxy/cache/entry.js';
import type { RemovalReason, Store, StoreListener } from '../../proxy/store/store.js';
import { testEntry as plainEntry } from '../helpers/entries.js';

/**
 * The behaviour every tier must share. Each tier's test file calls
 * `storeContract` with a factory; a new tier is done when it passes.
 */
export interface StoreFactoryOptions {
  maxSize: number;
  maxVariants: number;
  clock: () => number;
  listener: StoreListener;
}

export function testEntry(key: string, fields: Partial<Entry> & { bodyBytes?: number } = {}): Entry {
  const body = fields.body ?? Buffer.alloc(fields.bodyBytes ?? 100, 120);
  const { bodyBytes: _length, ...rest } = fields;
  // A fixed time, so every tier sees the same absolute freshness fields.
  return plainEntry({ key, body, size: body.length + ENTRY_OVERHEAD_BYTES, ...rest }, 1_000_000);
}

export function storeContract(name: string, makeStore: (options: StoreFactoryOptions) => Store | Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    async function setup(overrides: Partial<StoreFactoryOptions> = {}) {
      let now = 1_000_000;
      const removed: { key: string; variant: string; reason: RemovalReason }[] = [];
      const stored: string[] = [];
      const store = await makeStore({
        maxSize: 1024 * 1024,
        maxVariants: 4,
        clock: () => now,
        listener: {
          onStore: (entry) => stored.push(entry.key),
          onRemove: (entry, reason) => removed.push({ key: entry.key, variant: entry.variant, reason }),
        },
        ...overrides,
      });
      return { store, removed, stored, advance: (ms: number) => (now += ms), now: () => now };
    }

    it('returns what was set, and nothing for an unknown key', async () => {
      const { store } = await setup();
      const entry = testEntry('a', { body: Buffer.from('hello') });
      await store.set(entry);
      const found = await store.get('a');
      expect(found).toHaveLength(1);
      expect((await bodyBytes(found![0]!.body)).toString()).toBe('hello');
      expect(await store.get('b')).toBeUndefined();
    });

    it('keeps variants side by side and replaces a variant with the same value', async () => {
      const { store, removed } = await setup();
      await store.set(testEntry('k', { variant: 'lang=en\n', vary: ['lang'], body: Buffer.from('en1') }));
      await store.set(testEntry('k', { variant: 'lang=fr\n', vary: ['lang'], body: Buffer.from('fr') }));
      await store.set(testEntry('k', { variant: 'lang=en\n', vary: ['lang'], body: Buffer.from('en2') }));
      const variants = (await store.get('k'))!;
      const bodies = await Promise.all(variants.map(async (v) => (await bodyBytes(v.body)).toString()));
      expect(bodies.sort()).toEqual(['en2', 'fr']);
      expect(removed).toEqual([{ key: 'k', variant: 'lang=en\n', reason: 'replace' }]);
    });

    it('caps the variants per key, dropping the oldest', async () => {
      const { store, removed } = await setup({ maxVariants: 2 });
      for (const v of ['1', '2', '3']) await store.set(testEntry('k', { variant: v, vary: ['x'] }));
      expect((await store.get('k'))!.map((e) => e.variant).sort()).toEqual(['2', '3']);
      expect(removed).toEqual([{ key: 'k', variant: '1', reason: 'evict' }]);
    });

    it('drops a key’s oldest variants, not the newest, when together they would pass the whole bound', async () => {
      const entryBytes = 10_000;
      const { store, removed } = await setup({ maxSize: 2 * (entryBytes + ENTRY_OVERHEAD_BYTES) + 100 });
      for (const v of ['a', 'b', 'c']) await store.set(testEntry('k', { variant: v, vary: ['x'], bodyBytes: entryBytes }));
      expect((await store.get('k'))!.map((e) => e.variant).sort()).toEqual(['b', 'c']);
      expect(removed).toEqual([{ key: 'k', variant: 'a', reason: 'evict' }]);
      const stats = store.stats();
      expect(stats.bytes).toBeLessThanOrEqual(stats.maxBytes);
      expect(stats.entries).toBe(2);
    });

    it('deletes every variant of a key and says how many', async () => {
      const { store, removed } = await setup();
      await store.set(testEntry('k', { variant: '1', vary: ['x'] }));
      await store.set(testEntry('k', { variant: '2', vary: ['x'] }));
      expect(await store.delete('k')).toBe(2);
      expect(await store.get('k')).toBeUndefined();
      expect(await store.delete('k')).toBe(0);
      expect(removed.map((r) => r.reason)).toEqual(['delete', 'delete']);
    });

    it('hides entries past deleteAt and reports them expired', async () => {
      const { store, removed, advance } = await setup();
      await store.set(testEntry('short', { deleteAt: 1_000_000 + 1_000 }));
      await store.set(testEntry('long', { deleteAt: 1_000_000 + 100_000 }));
      advance(5_000);
      expect(await store.get('short')).toBeUndefined();
      expect(await store.get('long')).toHaveLength(1);
      expect(removed).toEqual([{ key: 'short', variant: '', reason: 'expire' }]);
    });

    it('sweeps expired entries without being asked for them', async () => {
      const { store, advance, now } = await setup();
      for (let i = 0; i < 10; i++) await store.set(testEntry(`k${i}`, { deleteAt: 1_000_000 + (i < 5 ? 1_000 : 100_000) }));
      advance(5_000);
      expect(await store.sweep(now())).toBe(5);
      expect(store.stats().entries).toBe(5);
    });

    it('stays within its byte bound by evicting the least recently used keys', async () => {
      const entryBytes = 10_000;
      const { store, removed } = await setup({ maxSize: 5 * (entryBytes + ENTRY_OVERHEAD_BYTES) });
      for (let i = 0; i < 5; i++) await store.set(testEntry(`k${i}`, { bodyBytes: entryBytes }));
      await store.get('k0');
      await store.set(testEntry('k5', { bodyBytes: entryBytes }));
      expect(await store.get('k0')).toHaveLength(1);
      expect(await store.get('k1')).toBeUndefined();
      expect(removed).toEqual([{ key: 'k1', variant: '', reason: 'evict' }]);
      const stats = store.stats();
      expect(stats.bytes).toBeLessThanOrEqual(stats.maxBytes);
      expect(stats.entries).toBe(5);
    });

    it('keeps a key used many times only until it is again the least recently used', async () => {
      const entryBytes = 10_000;
      const { store, removed } = await setup({ maxSize: 5 * (entryBytes + ENTRY_OVERHEAD_BYTES) });
      for (let i = 0; i < 5; i++) await store.set(testEntry(`k${i}`, { bodyBytes: entryBytes }));
      for (let i = 0; i < 100; i++) await store.get('k0');
      // k1..k4 go before k0; then k5 (stored after k0 was last used) outlives it.
      for (let i = 5; i <= 9; i++) await store.set(testEntry(`k${i}`, { bodyBytes: entryBytes }));
      expect(removed.map((r) => r.key)).toEqual(['k1', 'k2', 'k3', 'k4', 'k0']);
      expect(await store.get('k5')).toHaveLength(1);
    });

    it('accounts bytes as the sum of entry sizes', async () => {
      const { store } = await setup();
      const a = testEntry('a', { bodyBytes: 1000 });
      const b = testEntry('b', { bodyBytes: 3000 });
      await store.set(a);
      await store.set(b);
      expect(store.stats()).toMatchObject({ entries: 2, bytes: a.size + b.size });
      await store.delete('a');
      expect(store.stats()).toMatchObject({ entries: 1, bytes: b.size });
    });

    it('refuses an entry larger than the whole store without disturbing the others', async () => {
      const { store } = await setup({ maxSize: 50_000 });
      await store.set(testEntry('small', { bodyBytes: 100 }));
      await store.set(testEntry('huge', { bodyBytes: 100_000 }));
      expect(await store.get('huge')).toBeUndefined();
      expect(await store.get('small')).toHaveLength(1);
    });

    it('lists its keys and keeps tags with each entry', async () => {
      const { store, stored } = await setup();
      await store.set(testEntry('x', { tags: ['t1', 't2'] }));
      await store.set(testEntry('y'));
      const keys: string[] = [];
      for await (const key of store.keys()) keys.push(key);
      expect(keys.sort()).toEqual(['x', 'y']);
      expect((await store.get('x'))![0]!.tags).toEqual(['t1', 't2']);
      expect(stored).toEqual(['x', 'y']);
    });
  });
}
