import { describe, expect, it } from 'vitest';
import { BODY_SLACK_BYTES, MemoryStore } from '../../proxy/store/memory.js';
import { seededRandom } from '../../scripts/bench/zipf.js';
import { storeContract, testEntry } from '../contract/store-contract.js';

storeContract('memory tier', (options) => new MemoryStore(options));

describe('memory tier body ownership', () => {
  const store = () => new MemoryStore({ maxSize: 1024 * 1024, maxVariants: 4, clock: () => 1_000_000 });

  it('keeps a copy of just the body bytes when the body is a view into a larger read buffer', () => {
    const read = Buffer.alloc(10_000, 0x41);
    read.write('HTTP/1.1 200 OK\r\n', 0);
    const body = read.subarray(2_000, 2_100);
    const memory = store();
    memory.set(testEntry('k', { body }));
    const stored = memory.get('k')![0]! as { body: Buffer };
    expect(stored.body.equals(body)).toBe(true);
    expect(stored.body.buffer).not.toBe(read.buffer);
    expect(stored.body.byteOffset).toBe(0);
    expect(stored.body.buffer.byteLength).toBe(100);
  });

  it('keeps a body that is a view of a read holding little more (the response head) as it is, rather than copying it', () => {
    // As undici hands over a 10 KiB body that came in one socket read: the read's other bytes are the head.
    const read = Buffer.alloc(204 + 10_240, 0x43);
    const body = read.subarray(204);
    const memory = store();
    memory.set(testEntry('k', { body }));
    const stored = memory.get('k')![0]!.body as Buffer;
    expect(stored.buffer).toBe(read.buffer);
    expect(stored.buffer.byteLength - stored.length).toBeLessThanOrEqual(BODY_SLACK_BYTES);
  });

  it('copies a body whose buffer holds more than BODY_SLACK_BYTES besides it', () => {
    const read = Buffer.alloc(BODY_SLACK_BYTES + 1 + 10_240, 0x44);
    const body = read.subarray(BODY_SLACK_BYTES + 1);
    const memory = store();
    memory.set(testEntry('k', { body }));
    const stored = memory.get('k')![0]!.body as Buffer;
    expect(stored.equals(body)).toBe(true);
    expect(stored.buffer.byteLength).toBe(10_240);
  });

  it('copies a small body into a buffer of its own, not a slice of a shared pool', () => {
    const pooled = Buffer.from('a small cached body');
    expect(pooled.buffer.byteLength).toBeGreaterThan(pooled.length);
    const memory = store();
    memory.set(testEntry('k', { body: pooled }));
    const stored = memory.get('k')![0]!.body as Buffer;
    expect(stored.toString()).toBe('a small cached body');
    expect(stored.buffer.byteLength).toBe(pooled.length);
  });

  it('stores a body that owns its buffer as it is, and reports that same entry to listeners', () => {
    const stored: unknown[] = [];
    const removed: unknown[] = [];
    const memory = new MemoryStore({ maxSize: 1024 * 1024, maxVariants: 4, clock: () => 1_000_000, listener: { onStore: (e) => stored.push(e), onRemove: (e) => removed.push(e) } });
    const entry = testEntry('k', { body: Buffer.alloc(5_000, 0x42) });
    memory.set(entry);
    expect(memory.get('k')![0]).toBe(entry);
    expect(stored).toEqual([entry]);
    memory.delete('k');
    expect(removed[0]).toBe(entry);
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
