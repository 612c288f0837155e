import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { TagIndex } from '../../purge/tag-index.js';
import { fanOut } from '../../proxy/store/fan-out.js';
import { MemoryStore } from '../../proxy/store/memory.js';
import { TestClock } from '../helpers/clock.js';
import { testEntry } from '../helpers/entries.js';

function setup(maxSize = 1_000_000, maxVariants = 4) {
  const clock = new TestClock();
  const index = new TagIndex();
  const store = new MemoryStore({ maxSize, maxVariants, clock: clock.now, listener: fanOut([index]) });
  return { clock, index, store };
}

const keys = (index: TagIndex, tag: string) => index.variants(tag).map((ref) => `${ref.key}|${ref.variant}`).sort();

describe('the tag index follows the store', () => {
  it('indexes each stored variant under every tag it carries', () => {
    const { index, store, clock } = setup();
    store.set(testEntry({ key: 'h/a', tags: ['x', 'y'] }, clock.now()));
    store.set(testEntry({ key: 'h/b', tags: ['y'] }, clock.now()));
    store.set(testEntry({ key: 'h/c' }, clock.now()));
    expect(keys(index, 'x')).toEqual(['h/a|']);
    expect(keys(index, 'y')).toEqual(['h/a|', 'h/b|']);
    // Untagged entries cost the index nothing.
    expect(index.size()).toEqual({ tags: 2, variants: 2, links: 3 });
  });

  it('replaces a variant’s tags when the variant is stored again', () => {
    const { index, store, clock } = setup();
    store.set(testEntry({ key: 'h/a', tags: ['old'] }, clock.now()));
    store.set(testEntry({ key: 'h/a', tags: ['new'] }, clock.now()));
    expect(keys(index, 'old')).toEqual([]);
    expect(keys(index, 'new')).toEqual(['h/a|']);
    expect(index.size()).toEqual({ tags: 1, variants: 1, links: 1 });
  });

  it('keeps variants of one key apart', () => {
    const { index, store, clock } = setup();
    store.set(testEntry({ key: 'h/a', vary: ['accept-encoding'], variant: 'gzip', tags: ['t'] }, clock.now()));
    store.set(testEntry({ key: 'h/a', vary: ['accept-encoding'], variant: 'br', tags: ['t'] }, clock.now()));
    expect(keys(index, 't')).toEqual(['h/a|br', 'h/a|gzip']);
    store.deleteVariant(store.get('h/a')!.find((entry) => entry.variant === 'br')!);
    expect(keys(index, 't')).toEqual(['h/a|gzip']);
  });

  it('drops entries the store deletes', () => {
    const { index, store, clock } = setup();
    store.set(testEntry({ key: 'h/a', tags: ['t'] }, clock.now()));
    store.delete('h/a');
    expect(index.size()).toEqual({ tags: 0, variants: 0, links: 0 });
  });

  it('drops entries that expire, whether found on lookup or by the sweep', () => {
    const { index, store, clock } = setup();
    store.set(testEntry({ key: 'h/a', tags: ['t'] }, clock.now()));
    store.set(testEntry({ key: 'h/b', tags: ['t'] }, clock.now()));
    clock.advance(61);
    expect(store.get('h/a')).toBeUndefined();
    expect(keys(index, 't')).toEqual(['h/b|']);
    store.sweep(clock.now());
    expect(index.size()).toEqual({ tags: 0, variants: 0, links: 0 });
  });

  it('drops entries the LRU evicts and variants beyond the cap', () => {
    const { index, store, clock } = setup(600 * 3, 2);
    for (const name of ['a', 'b', 'c', 'd']) store.set(testEntry({ key: `h/${name}`, tags: [name, 'all'] }, clock.now()));
    expect(keys(index, 'a')).toEqual([]);
    expect(keys(index, 'all')).toEqual(['h/b|', 'h/c|', 'h/d|']);
    store.delete('h/b');
    store.delete('h/c');
    for (const variant of ['1', '2', '3']) store.set(testEntry({ key: 'h/v', vary: ['x'], variant, tags: ['v'] }, clock.now()));
    expect(keys(index, 'v')).toEqual(['h/v|2', 'h/v|3']);
  });

  it('ignores a late removal of a variant that was already replaced', () => {
    const index = new TagIndex();
    const first = testEntry({ key: 'h/a', tags: ['t'], storedAt: 1 });
    const second = testEntry({ key: 'h/a', tags: ['t'], storedAt: 2 });
    index.onStore(first);
    index.onStore(second);
    index.onRemove(first, 'replace');
    expect(keys(index, 't')).toEqual(['h/a|']);
  });

  it('stays flat over 1,000,000 store/evict cycles: size bounded by the store, heap back to where it was', () => {
    // A store of 100 entries, each cycle storing a new key with two new tags and evicting the oldest.
    const { index, store, clock } = setup(600 * 100);
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const heapAfterGc = (): number => {
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const cycles = (from: number, to: number): void => {
      const now = clock.now();
      for (let i = from; i < to; i++) store.set(testEntry({ key: `h/${i}`, tags: [`t${i}`, `g${i % 1000}`] }, now));
    };
    cycles(0, 100_000);
    const before = heapAfterGc();
    cycles(100_000, 1_000_000);
    const after = heapAfterGc();
    expect(store.stats().entries).toBe(100);
    expect(index.size()).toEqual({ tags: 200, variants: 100, links: 200 });
    // Were evictions not unlinked, 900,000 more records and 1,800,000 tag sets would hold well over 100 MB.
    expect(after - before).toBeLessThan(8 * 1024 * 1024);
  });
});

describe('the listener fan-out', () => {
  it('tells every listener, and one that throws neither stops the others nor the store', () => {
    const seen: string[] = [];
    const errors: unknown[] = [];
    const listener = fanOut(
      [
        {
          onStore: () => {
            throw new Error('broken listener');
          },
        },
        { onStore: (entry) => seen.push(`store ${entry.key}`), onRemove: (entry, reason) => seen.push(`${reason} ${entry.key}`) },
      ],
      (error) => errors.push(error),
    );
    const clock = new TestClock();
    const store = new MemoryStore({ maxSize: 1_000_000, maxVariants: 4, clock: clock.now, listener });
    store.set(testEntry({ key: 'h/a' }, clock.now()));
    store.delete('h/a');
    expect(seen).toEqual(['store h/a', 'delete h/a']);
    expect(errors).toHaveLength(1);
  });
});
