import { readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bodyBytes, isFileBody } from '../../proxy/cache/body.js';
import { entryWith, type Entry } from '../../proxy/cache/entry.js';
import { DiskStore } from '../../proxy/store/disk.js';
import type { RemovalReason } from '../../proxy/store/store.js';
import { TieredStore } from '../../proxy/store/tiered.js';
import { testEntry } from '../contract/store-contract.js';
import { tempDir } from '../helpers/tempdir.js';

const root = tempDir('lacquer-disk-files-');
let dirs = 0;

function files(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .filter((sub) => /^[0-9a-f]{2}$/.test(sub))
    .flatMap((sub) => readdirSync(join(dir, sub)).filter((name) => name.endsWith(suffix)));
}

function openDisk(dir: string, events: string[] = [], stored: Entry[] = [], maxSize = 1 << 20) {
  return new DiskStore({
    dir,
    maxSize,
    maxObjectSize: maxSize,
    maxVariants: 4,
    clock: () => 1_000_000,
    listener: {
      onStore: (entry) => {
        events.push(`store ${entry.key}`);
        stored.push(entry);
      },
      onRemove: (entry, reason: RemovalReason) => events.push(`${reason} ${entry.key}`),
    },
  });
}

describe('disk tier files', () => {
  it('tells its listener about every entry it finds at boot, with tags and times', async () => {
    const dir = join(root, String(dirs++));
    const first = openDisk(dir);
    await first.set(testEntry('a', { tags: ['product-1', 'list'], etag: '"x"', freshUntil: 1_030_000 }));
    await first.set(testEntry('b', { tags: ['product-2'] }));
    await first.close();

    const stored: Entry[] = [];
    const again = openDisk(dir, [], stored);
    await again.ready;
    const byKey = new Map(stored.map((entry) => [entry.key, entry]));
    expect([...byKey.keys()].sort()).toEqual(['a', 'b']);
    expect(byKey.get('a')).toMatchObject({ tags: ['product-1', 'list'], etag: '"x"', freshUntil: 1_030_000 });
    expect((await bodyBytes(byKey.get('b')!.body)).equals(Buffer.alloc(100, 120))).toBe(true);
    await again.close();
  });

  it('names the metadata file of a new entry after its body file (one id in the index), and rewritten metadata anew', async () => {
    const dir = join(root, String(dirs++));
    const store = new TieredStore({ memory: { maxSize: 1 << 20, maxObjectSize: 1 << 20 }, disk: { dir, maxSize: 1 << 20, maxObjectSize: 1 << 20 }, maxVariants: 4, clock: () => 1_000_000 });
    await store.set(testEntry('k'));
    const id = (name: string) => name.slice(0, name.indexOf('.'));
    const [body] = files(dir, '.body');
    expect(files(dir, '.meta').map(id)).toEqual([id(body!)]);

    await store.set(entryWith(store.get('k')![0]!, { freshUntil: 1_000_000 }));
    // Closing waits for the removal of the replaced metadata file, which runs in the background.
    await store.close();
    expect(files(dir, '.body')).toEqual([body]);
    const metas = files(dir, '.meta');
    expect(metas).toHaveLength(1);
    expect(id(metas[0]!)).not.toBe(id(body!));
  });

  /** A disk tier with room for three 612-byte test entries, holding a (variants v1 and v2, stored first) and b. */
  async function twoVariantsAndB(): Promise<{ disk: DiskStore; events: string[] }> {
    const events: string[] = [];
    const disk = openDisk(join(root, String(dirs++)), events, [], 2000);
    await disk.set(testEntry('a', { variant: 'v1' }));
    await disk.set(testEntry('a', { variant: 'v2' }));
    await disk.set(testEntry('b'));
    return { disk, events };
  }

  it('keeps a key that went from two variants to one in its place in the LRU order, and answers its variant', async () => {
    const { disk, events } = await twoVariantsAndB();
    disk.deleteVariant(testEntry('a', { variant: 'v2' }));
    expect(disk.variantCount('a')).toBe(1);
    expect(disk.get('a')!.map((entry) => entry.variant)).toEqual(['v1']);
    // That get made a the most recently used key: b is the one to go when the bound is passed.
    await disk.set(testEntry('c'));
    await disk.set(testEntry('d'));
    expect(events.filter((event) => event.startsWith('evict'))).toEqual(['evict b']);
    expect(disk.current('a', 'v1')?.variant).toBe('v1');
    await disk.set(testEntry('a', { variant: 'v3' }));
    expect(disk.get('a')!.map((entry) => entry.variant)).toEqual(['v3', 'v1']);
    await disk.close();
  });

  it('tells a memory hit whether it holds every variant of the key, and marks the key used only then', async () => {
    const { disk, events } = await twoVariantsAndB();
    expect(disk.touchIfHolding('a', 1)).toBe(false);
    expect(disk.touchIfHolding('nowhere', 0)).toBe(false);
    expect(disk.touchIfHolding('a', 2)).toBe(true);
    // a is now the most recently used key: b goes first once the bound is passed.
    await disk.set(testEntry('c'));
    expect(events.filter((event) => event.startsWith('evict'))).toEqual(['evict b']);
    await disk.close();
  });

  it('rewrites only the metadata when an entry is stored again with the same body (soft purge, freshening)', async () => {
    const dir = join(root, String(dirs++));
    const events: string[] = [];
    const store = new TieredStore({
      memory: { maxSize: 1 << 20, maxObjectSize: 1 << 20 },
      disk: { dir, maxSize: 1 << 20, maxObjectSize: 1 << 20 },
      maxVariants: 4,
      clock: () => 1_000_000,
      listener: { onStore: (entry) => events.push(`store ${entry.key}`), onRemove: (entry, reason) => events.push(`${reason} ${entry.key}`) },
    });
    const entry = testEntry('k', { body: Buffer.from('the body'), tags: ['t'] });
    await store.set(entry);
    const bodyFiles = files(dir, '.body');
    expect(bodyFiles).toHaveLength(1);

    // As purge does: the entry read back (its body in memory), made stale and stored again.
    const current = store.get('k')![0]!;
    await store.set(entryWith(current, { freshUntil: 1_000_000, staleWhileRevalidateUntil: 1_000_000 }));
    // And as a 304 does for an entry served from disk (no longer in memory): its file body stored again.
    store.memory.delete('k');
    const onDisk = store.disk.get('k')![0]!;
    expect(isFileBody(onDisk.body)).toBe(true);
    await store.set(entryWith(onDisk, { freshUntil: 1_010_000 }));

    expect(files(dir, '.body')).toEqual(bodyFiles);
    expect(events).toEqual(['store k', 'replace k', 'store k', 'replace k', 'store k']);
    const [stored] = store.disk.get('k')!;
    expect(stored!.freshUntil).toBe(1_010_000);
    expect(isFileBody(stored!.body) && stored!.body.path.endsWith(bodyFiles[0]!)).toBe(true);
    await store.close();
    expect(files(dir, '.body')).toEqual(bodyFiles);
    expect(files(dir, '.meta')).toHaveLength(1);
  });

  it('does not bring back at restart what was deleted, replaced or expired', async () => {
    const dir = join(root, String(dirs++));
    let now = 1_000_000;
    const first = new DiskStore({ dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: () => now });
    await first.set(testEntry('deleted'));
    await first.set(testEntry('replaced', { body: Buffer.from('old') }));
    await first.set(testEntry('replaced', { body: Buffer.from('new') }));
    await first.set(testEntry('expires', { deleteAt: 1_005_000 }));
    await first.set(testEntry('kept'));
    first.delete('deleted');
    await first.close();

    now = 1_010_000;
    const again = new DiskStore({ dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: () => now });
    await again.ready;
    expect([...again.keys()].sort()).toEqual(['kept', 'replaced']);
    expect((await bodyBytes(again.get('replaced')![0]!.body)).toString()).toBe('new');
    expect(files(dir, '.meta')).toHaveLength(2);
    await again.close();
  });

  it('after a crash between an entry\'s two renames (body in place, metadata still temporary), serves nothing of it and removes both files at boot', async () => {
    const dir = join(root, String(dirs++));
    const first = openDisk(dir);
    await first.set(testEntry('whole'));
    await first.set(testEntry('torn'));
    await first.close();
    // The torn entry as a crash would leave it: its body renamed into place, its metadata never renamed (a temporary of a process gone).
    const meta = files(dir, '.meta').map((name) => join(dir, name.slice(0, 2), name)).find((path) => readFileSync(path).includes('"torn"'))!;
    renameSync(meta, `${meta}.tmp`);

    const again = openDisk(dir);
    await again.ready;
    expect([...again.keys()]).toEqual(['whole']);
    await expect.poll(() => files(dir, '.tmp').length === 0 && files(dir, '.body').length === 1, { timeout: 10_000 }).toBe(true);
    expect(files(dir, '.meta')).toHaveLength(1);
    await again.close();
  });

  it('at boot, drops metadata whose body never made it into place (only its temporary file is there)', async () => {
    const dir = join(root, String(dirs++));
    const first = openDisk(dir);
    await first.set(testEntry('whole'));
    await first.set(testEntry('bodiless'));
    await first.close();
    const meta = files(dir, '.meta').map((name) => join(dir, name.slice(0, 2), name)).find((path) => readFileSync(path).includes('"bodiless"'))!;
    const body = meta.replace(/\.meta$/, '.body');
    renameSync(body, `${body}.tmp`);

    const again = openDisk(dir);
    await again.ready;
    expect([...again.keys()]).toEqual(['whole']);
    await expect.poll(() => files(dir, '.tmp').length === 0 && files(dir, '.meta').length === 1, { timeout: 10_000 }).toBe(true);
    await again.close();
  });

  it('answers while the boot scan runs, and a delete made meanwhile wins over the copy on disk', async () => {
    const dir = join(root, String(dirs++));
    const first = openDisk(dir);
    for (let i = 0; i < 200; i++) await first.set(testEntry(`k${i}`));
    await first.close();

    const again = openDisk(dir);
    expect(again.booting).toBe(true);
    again.delete('k150');
    await again.set(testEntry('new-during-boot'));
    await again.ready;
    expect(again.booting).toBe(false);
    expect(again.stats().entries).toBe(200);
    expect(again.get('k150')).toBeUndefined();
    expect(again.get('new-during-boot')).toHaveLength(1);
    await again.close();
  });

  it('evicts the least recently used entries to stay under maxSize, and removes their files', async () => {
    const dir = join(root, String(dirs++));
    const events: string[] = [];
    const entrySize = testEntry('x', { bodyBytes: 10_000 }).size;
    const store = openDisk(dir, events, [], 3 * entrySize);
    for (const key of ['a', 'b', 'c']) await store.set(testEntry(key, { bodyBytes: 10_000 }));
    store.get('a');
    await store.set(testEntry('d', { bodyBytes: 10_000 }));
    expect(events).toContain('evict b');
    expect([...store.keys()].sort()).toEqual(['a', 'c', 'd']);
    expect(store.stats().bytes).toBeLessThanOrEqual(3 * entrySize);
    await store.close();
    expect(files(dir, '.meta')).toHaveLength(3);
    expect(files(dir, '.body')).toHaveLength(3);
  });

  it('refuses a non-empty directory that is not a cache directory, and deletes nothing in it', async () => {
    const dir = join(root, String(dirs++));
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'precious.txt'), 'keep me');
    const errors: unknown[] = [];
    const store = new DiskStore({ dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: () => 1_000_000, onError: (error) => errors.push(error) });
    await store.ready;
    await expect(store.set(testEntry('a'))).rejects.toThrow(/not a Lacquer cache directory/);
    expect(readdirSync(dir)).toEqual(['precious.txt']);
    expect(String(errors[0])).toContain('not a Lacquer cache directory');
    await store.close();
  });

  it('refuses a directory another live process holds, and takes over the lock of a dead one', async () => {
    const { writeFileSync } = await import('node:fs');
    const dir = join(root, String(dirs++));
    const first = openDisk(dir);
    await first.set(testEntry('a'));
    await first.close();

    // A live process that is not this one (the test runner's parent) holds the directory.
    writeFileSync(join(dir, 'lacquer.lock'), `${process.ppid}\n`);
    const errors: unknown[] = [];
    const refused = new DiskStore({ dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: () => 1_000_000, onError: (error) => errors.push(error) });
    await refused.ready;
    expect(String(errors[0])).toContain(`in use by another Lacquer process (pid ${process.ppid})`);
    expect(refused.get('a')).toBeUndefined();
    await refused.close();

    // A pid no process has (far above the kernel's limit) is a crashed holder.
    writeFileSync(join(dir, 'lacquer.lock'), '99999999\n');
    const taken = openDisk(dir);
    await taken.ready;
    expect(taken.get('a')).toHaveLength(1);
    await taken.close();
  });

  it('leaves no body file behind when a writer is released while it finishes (its reader left during the last chunk)', async () => {
    for (let turns = 0; turns < 30; turns++) {
      const dir = join(root, String(dirs++));
      const store = openDisk(dir);
      await store.ready;
      const writer = store.createBodyWriter()!;
      await writer.write(Buffer.from('body bytes'));
      const finishing = writer.finish().then(
        () => 'finished',
        () => 'refused',
      );
      for (let i = 0; i < turns; i++) await new Promise((resolve) => setImmediate(resolve));
      writer.release();
      await finishing;
      await store.close();
      const bodies = readdirSync(dir, { recursive: true }).filter((name) => String(name).endsWith('.body'));
      expect(bodies, `released after ${turns} turns`).toEqual([]);
    }
  });

  it('remembers a delete only against a write of the same key in flight, so busy stores do not pile up tombstones', async () => {
    const dir = join(root, String(dirs++));
    const store = openDisk(dir);
    await store.ready;
    const writes = [store.set(testEntry('being-written', { bodyBytes: 50_000 })), store.set(testEntry('also-written', { bodyBytes: 50_000 }))];
    for (let i = 0; i < 1_000; i++) store.delete(`unrelated-${i}`);
    store.delete('being-written');
    expect(store.tombstones).toBe(1);
    await Promise.all(writes);
    expect(store.tombstones).toBe(0);
    // The delete made while it was being written still wins.
    expect(store.get('being-written')).toBeUndefined();
    expect(store.get('also-written')).toHaveLength(1);
    await store.close();
  });

  describe('the directory lock in containers, where every replica may be pid 1', () => {
    async function refusal(dir: string): Promise<string | undefined> {
      const errors: unknown[] = [];
      const store = new DiskStore({ dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: () => 1_000_000, onError: (error) => errors.push(error) });
      await store.ready;
      await store.close();
      return errors.length === 0 ? undefined : String(errors[0]);
    }

    it('refuses a second store on the directory in the same process', async () => {
      const dir = join(root, String(dirs++));
      const first = openDisk(dir);
      await first.ready;
      expect(await refusal(dir)).toContain('in use by another store in this process');
      await first.close();
    });

    it('refuses a lock with our own pid from another host while its holder refreshes it, and takes it over once it goes stale', async () => {
      const { utimesSync, writeFileSync } = await import('node:fs');
      const dir = join(root, String(dirs++));
      const first = openDisk(dir);
      await first.close();
      const lock = join(dir, 'lacquer.lock');
      writeFileSync(lock, `${process.pid} another-replica 0b5e\n`);
      expect(await refusal(dir)).toContain(`pid ${process.pid} on another-replica`);
      const longAgo = new Date(Date.now() - 120_000);
      utimesSync(lock, longAgo, longAgo);
      expect(await refusal(dir)).toBeUndefined();
    });

    it('takes over a lock with our own pid on this host left by an earlier run (a restart after a crash)', async () => {
      const { writeFileSync } = await import('node:fs');
      const { hostname } = await import('node:os');
      const dir = join(root, String(dirs++));
      const first = openDisk(dir);
      await first.close();
      writeFileSync(join(dir, 'lacquer.lock'), `${process.pid} ${hostname()} an-earlier-run\n`);
      expect(await refusal(dir)).toBeUndefined();
    });
  });
});
