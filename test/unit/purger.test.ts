import { describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { Purger, PurgeSpecError, type RelayedPurge } from '../../purge/purger.js';
import type { PurgeSpec } from '../../purge/selectors.js';
import { TagIndex } from '../../purge/tag-index.js';
import { Invalidations } from '../../proxy/cache/coalesce.js';
import type { Entry } from '../../proxy/cache/entry.js';
import { fanOut } from '../../proxy/store/fan-out.js';
import { MemoryStore } from '../../proxy/store/memory.js';
import type { Store } from '../../proxy/store/store.js';
import { TestClock } from '../helpers/clock.js';
import { testEntry } from '../helpers/entries.js';

function setup(sliceSize?: number, wrap: (store: MemoryStore) => Store = (store) => store) {
  const clock = new TestClock();
  const index = new TagIndex();
  const memory = new MemoryStore({ maxSize: 64 * 1024 * 1024, maxVariants: 8, clock: clock.now, listener: fanOut([index]) });
  const errors: unknown[] = [];
  const purger = new Purger({
    store: wrap(memory),
    index,
    invalidations: new Invalidations(),
    keyOptions: defaults().key,
    clock: clock.now,
    ...(sliceSize === undefined ? {} : { sliceSize }),
    onError: (error) => errors.push(error),
  });
  return { clock, index, store: memory, purger, errors };
}

const spec = (fields: Partial<PurgeSpec>): PurgeSpec => ({ urls: [], tags: [], prefixes: [], all: false, mode: 'hard', ...fields });

/** Counts event-loop turns (setImmediate callbacks) while `work` runs. */
async function turnsDuring(work: Promise<unknown>): Promise<number> {
  let turns = 0;
  let done = false;
  const tick = (): void => {
    if (done) return;
    turns++;
    setImmediate(tick);
  };
  setImmediate(tick);
  await work;
  done = true;
  return turns;
}

describe('the purger', () => {
  it('purges a large tag a slice at a time, letting the event loop turn between slices', async () => {
    const sliced = setup(100);
    const whole = setup(Number.POSITIVE_INFINITY);
    for (const { store, clock } of [sliced, whole]) {
      for (let i = 0; i < 2_000; i++) store.set(testEntry({ key: `h/${i}`, tags: ['big'] }, clock.now()));
    }
    const slicedTurns = await turnsDuring(sliced.purger.purge(spec({ tags: ['big'] }), 'admin'));
    const wholeTurns = await turnsDuring(whole.purger.purge(spec({ tags: ['big'] }), 'admin'));
    expect(slicedTurns).toBeGreaterThanOrEqual(19);
    expect(wholeTurns).toBe(0);
    expect(sliced.store.stats().entries).toBe(0);
    expect(whole.store.stats().entries).toBe(0);
  });

  it('removes only the variants that carry the tag when variants of a key differ', async () => {
    const { store, purger, clock } = setup();
    store.set(testEntry({ key: 'h/a', vary: ['x'], variant: '1', tags: ['red'] }, clock.now()));
    store.set(testEntry({ key: 'h/a', vary: ['x'], variant: '2', tags: ['blue'] }, clock.now()));
    expect((await purger.purge(spec({ tags: ['red'] }), 'admin')).purged).toBe(1);
    expect(store.get('h/a')!.map((entry) => entry.variant)).toEqual(['2']);
  });

  it('soft purges by storing a stale copy with the same body', async () => {
    const { store, purger, clock, index } = setup();
    const body = Buffer.from('payload');
    store.set(testEntry({ key: 'h/a', tags: ['t'], body, staleWhileRevalidateUntil: clock.now() + 90_000, deleteAt: clock.now() + 90_000 }, clock.now()));
    // The body as the store holds it (the memory tier keeps a copy that owns its bytes); the soft copy must reuse it.
    const held = store.get('h/a')![0]!.body;
    expect((held as Buffer).equals(body)).toBe(true);
    clock.advance(10);
    expect((await purger.purge(spec({ tags: ['t'], mode: 'soft' }), 'admin')).purged).toBe(1);
    const [entry] = store.get('h/a')!;
    expect(entry!.body).toBe(held);
    expect(entry!.freshUntil).toBe(clock.now());
    expect(entry!.staleWhileRevalidateUntil).toBe(clock.now() + 30_000);
    // Still indexed: a soft-purged entry can be purged again; softly, it is already stale, so nothing changes.
    expect(index.variants('t')).toHaveLength(1);
    expect((await purger.purge(spec({ tags: ['t'], mode: 'soft' }), 'admin')).purged).toBe(0);
    expect((await purger.purge(spec({ tags: ['t'] }), 'admin')).purged).toBe(1);
  });

  it('leaves alone what was stored after the purge began', async () => {
    const { store, purger, clock } = setup(10);
    for (let i = 0; i < 50; i++) store.set(testEntry({ key: `h/${i}`, tags: ['t'] }, clock.now()));
    const purge = purger.purge(spec({ tags: ['t'] }), 'admin');
    // While the purge yields, a new response for a key it has not reached yet is stored.
    await new Promise((resolve) => setImmediate(resolve));
    clock.advance(1);
    store.set(testEntry({ key: 'h/49', tags: ['t'], status: 201 }, clock.now()));
    await purge;
    expect(store.get('h/49')?.[0]?.status).toBe(201);
    expect(store.stats().entries).toBe(1);
  });

  it('goes on past a store operation that fails, and reports it', async () => {
    const { store, purger, clock, errors } = setup(undefined, (memory) => ({
      get: (key) => memory.get(key),
      set: (entry: Entry) => memory.set(entry),
      delete: (key) => {
        if (key === 'h/1') throw new Error('disk on fire');
        return memory.delete(key);
      },
      keys: () => memory.keys(),
      sweep: (now) => memory.sweep(now),
      stats: () => memory.stats(),
      close: () => memory.close(),
    }));
    for (let i = 0; i < 3; i++) store.set(testEntry({ key: `h/${i}`, tags: ['t'] }, clock.now()));
    expect((await purger.purge(spec({ prefixes: ['/'] }), 'admin')).purged).toBe(2);
    expect(errors).toHaveLength(1);
    expect(store.stats().entries).toBe(1);
  });

  it('refuses a bad URL before purging anything', async () => {
    const { store, purger, clock } = setup();
    store.set(testEntry({ key: 'h/a', tags: ['t'] }, clock.now()));
    await expect(purger.purge(spec({ tags: ['t'], urls: ['no-slash'] }), 'admin')).rejects.toBeInstanceOf(PurgeSpecError);
    expect(store.stats().entries).toBe(1);
  });

  it('sends a purge made here through every relay and answers only once they have applied it', async () => {
    const { store, purger, clock } = setup();
    store.set(testEntry({ key: 'h/a', tags: ['t'] }, clock.now()));
    const sent: RelayedPurge[] = [];
    let release!: () => void;
    const applied = new Promise<void>((resolve) => (release = resolve));
    purger.addRelay({ send: async (purge) => (sent.push(purge), applied) });
    let answered = false;
    const answer = purger.purge(spec({ tags: ['t'] }), 'method', 'example.test').then((result) => ((answered = true), result));
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(store.stats().entries).toBe(0);
    expect(sent).toEqual([{ spec: spec({ tags: ['t'] }), host: 'example.test' }]);
    expect(answered).toBe(false);
    release();
    expect((await answer).purged).toBe(1);
  });

  it('applies a relayed purge here without relaying it again', async () => {
    const { store, purger, clock } = setup();
    store.set(testEntry({ key: 'h/a', tags: ['t'] }, clock.now()));
    const sent: RelayedPurge[] = [];
    purger.addRelay({ send: async (purge) => void sent.push(purge) });
    expect((await purger.applyRelayed({ spec: spec({ tags: ['t'] }) })).purged).toBe(1);
    expect(sent).toEqual([]);
    expect(store.stats().entries).toBe(0);
  });

  it('relays nothing for a purge it refuses', async () => {
    const { purger } = setup();
    const sent: RelayedPurge[] = [];
    purger.addRelay({ send: async (purge) => void sent.push(purge) });
    await expect(purger.purge(spec({ urls: ['no-slash'] }), 'admin')).rejects.toBeInstanceOf(PurgeSpecError);
    expect(sent).toEqual([]);
  });
});
