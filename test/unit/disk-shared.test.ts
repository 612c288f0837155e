import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { entryWith } from '../../proxy/cache/entry.js';
import { bodyBytes } from '../../proxy/cache/body.js';
import { DiskStore, type DiskChange } from '../../proxy/store/disk.js';
import { claimDirectory } from '../../proxy/store/disk-scan.js';
import { testEntry } from '../contract/store-contract.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * Workers sharing one directory, here as stores in one process whose
 * announcements are carried to each other asynchronously and as JSON, the
 * way the primary relays them between worker processes.
 */

const root = tempDir('lacquer-disk-shared-');
let dirs = 0;
const open: DiskStore[] = [];
afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
});

function metaFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((sub) => /^[0-9a-f]{2}$/.test(sub))
    .flatMap((sub) => readdirSync(join(dir, sub)).filter((name) => name.endsWith('.meta')));
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A group of stores on one claimed directory, each announcing to all the others. */
async function group(count: number, maxSize = 1 << 20, since = Date.now()) {
  const dir = join(root, String(dirs++));
  await claimDirectory(dir);
  const stores: DiskStore[] = [];
  let inFlight = 0;
  const relay = (from: number, change: DiskChange) => {
    const copy = JSON.parse(JSON.stringify(change)) as DiskChange;
    inFlight++;
    setImmediate(() => {
      inFlight--;
      stores.forEach((store, i) => i !== from && store.applyPeerChange(copy));
    });
  };
  const add = () => {
    const index = stores.length;
    const store = new DiskStore({ dir, maxSize, maxObjectSize: maxSize, maxVariants: 4, clock: Date.now, shared: { lockHolder: process.pid, since, announce: (change) => relay(index, change) } });
    stores.push(store);
    open.push(store);
    return store;
  };
  for (let i = 0; i < count; i++) add();
  await Promise.all(stores.map((store) => store.ready));
  return { dir, stores, add, settled: () => until(() => inFlight === 0, 'announcements to arrive') };
}

describe('a disk tier shared by workers', () => {
  it('serves an entry one worker wrote from every other, body intact', async () => {
    const { stores, settled } = await group(3);
    const [a, b, c] = stores as [DiskStore, DiskStore, DiskStore];
    await a.set(testEntry('k', { body: Buffer.from('written by a'), deleteAt: Date.now() + 60_000 }));
    await settled();
    for (const store of [b, c]) {
      const [entry] = store.get('k')!;
      expect((await bodyBytes(entry!.body)).toString()).toBe('written by a');
    }
    expect(b.stats()).toEqual(a.stats());
  });

  it('drops everywhere an entry one worker deleted', async () => {
    const { stores, settled } = await group(2);
    const [a, b] = stores as [DiskStore, DiskStore];
    await a.set(testEntry('k', { deleteAt: Date.now() + 60_000 }));
    await settled();
    expect(b.get('k')).toHaveLength(1);
    b.delete('k');
    await settled();
    expect(a.get('k')).toBeUndefined();
    expect(a.stats().entries).toBe(0);
  });

  it('keeps one copy when two workers write the same variant at once', async () => {
    const { dir, stores, settled } = await group(2);
    const [a, b] = stores as [DiskStore, DiskStore];
    await Promise.all([a.set(testEntry('k', { body: Buffer.from('from a'), deleteAt: Date.now() + 60_000 })), b.set(testEntry('k', { body: Buffer.from('from b'), deleteAt: Date.now() + 60_000 }))]);
    await settled();
    const [fromA] = a.get('k')!;
    const [fromB] = b.get('k')!;
    expect((await bodyBytes(fromA!.body)).toString()).toBe((await bodyBytes(fromB!.body)).toString());
    await until(() => metaFiles(dir).length === 1, 'one metadata file');
    expect(a.stats().entries).toBe(1);
    expect(b.stats().entries).toBe(1);
  });

  it('gives way to a later copy of the variant adopted from another worker while its own write was under way', async () => {
    const dir = join(root, String(dirs++));
    await claimDirectory(dir);
    const announced: DiskChange[] = [];
    const make = (announce: (change: DiskChange) => void) => {
      const store = new DiskStore({ dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: Date.now, shared: { lockHolder: process.pid, since: Date.now(), announce } });
      open.push(store);
      return store;
    };
    const a = make((change) => announced.push(change));
    const b = make(() => undefined);
    await Promise.all([a.ready, b.ready]);
    await a.set(testEntry('k', { body: Buffer.from('from a'), deleteAt: Date.now() + 60_000 }));
    const fromA = announced.find((change) => change.kind === 'stored')!;
    // a's copy, as if written after b's: it arrives while b is still writing its own.
    const later = JSON.parse(JSON.stringify(fromA)) as DiskChange & { kind: 'stored' };
    const writing = b.set(testEntry('k', { body: Buffer.from('from b'), deleteAt: Date.now() + 60_000 }));
    // Write stamps are in microseconds: a copy written a minute later, whenever b's own write is stamped.
    b.applyPeerChange({ ...later, record: { ...later.record, written: later.record.written + 60_000_000 } });
    await writing;
    const [kept] = b.get('k')!;
    expect((await bodyBytes(kept!.body)).toString()).toBe('from a');
    await until(() => metaFiles(dir).length === 1, "b's own metadata file to go");
  });

  it('keeps the whole directory under maxSize while several workers write', async () => {
    const entryBytes = testEntry('x', { bodyBytes: 1000 }).size;
    const maxSize = entryBytes * 10;
    const { dir, stores, settled } = await group(3, maxSize);
    for (let i = 0; i < 60; i++) await stores[i % 3]!.set(testEntry(`k${i}`, { bodyBytes: 1000, deleteAt: Date.now() + 60_000 }));
    await settled();
    for (const store of stores) {
      expect(store.stats().bytes).toBeLessThanOrEqual(maxSize);
      expect(store.stats().bytes).toBeGreaterThan(0);
    }
    // Every index counts what the directory holds.
    await until(() => metaFiles(dir).length === stores[0]!.stats().entries, 'unlinks to finish');
    expect(metaFiles(dir).length * entryBytes).toBeLessThanOrEqual(maxSize);
    for (const store of stores) expect(store.stats()).toEqual(stores[0]!.stats());
  });

  it("indexes at boot what the others wrote and leaves a write in progress alone, removing only an earlier run's leftovers", async () => {
    const since = Date.now() - 60_000;
    const { dir, stores, add } = await group(1, 1 << 20, since);
    await stores[0]!.set(testEntry('k', { deleteAt: Date.now() + 60_000 }));
    const inProgress = join(dir, 'aa', `${'a'.repeat(32)}.body.tmp`);
    const unnamedYet = join(dir, 'ab', `${'b'.repeat(32)}.body`);
    const leftover = join(dir, 'ac', `${'c'.repeat(32)}.body.tmp`);
    for (const path of [inProgress, unnamedYet, leftover]) {
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, 'x');
    }
    const past = new Date(since - 60_000);
    utimesSync(leftover, past, past);

    const late = add();
    await late.ready;
    expect(late.get('k')).toHaveLength(1);
    const left = readdirSync(join(dir, 'aa')).concat(readdirSync(join(dir, 'ab')), readdirSync(join(dir, 'ac')));
    expect(left).toContain(`${'a'.repeat(32)}.body.tmp`);
    expect(left).toContain(`${'b'.repeat(32)}.body`);
    await until(() => !readdirSync(join(dir, 'ac')).includes(`${'c'.repeat(32)}.body.tmp`), 'the leftover to go');
  });

  it('removes at boot a temporary file whose writer is a process no longer running, however recent, and keeps one whose writer runs', async () => {
    const { dir, add } = await group(1, 1 << 20, Date.now() - 60_000);
    // A process that has exited: a worker killed mid-write, as far as the directory can tell.
    const exited = spawnSync(process.execPath, ['-e', '']).pid!;
    const running = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      const deadWriter = join(dir, 'ad', `${'d'.repeat(32)}.body.${exited}.tmp`);
      const liveWriter = join(dir, 'ae', `${'e'.repeat(32)}.meta.${running.pid}.tmp`);
      for (const path of [deadWriter, liveWriter]) {
        mkdirSync(join(path, '..'), { recursive: true });
        writeFileSync(path, 'half written');
      }
      const late = add();
      await late.ready;
      await until(() => !readdirSync(join(dir, 'ad')).includes(`${'d'.repeat(32)}.body.${exited}.tmp`), 'the dead writer\'s file to go');
      expect(readdirSync(join(dir, 'ae'))).toEqual([`${'e'.repeat(32)}.meta.${running.pid}.tmp`]);
    } finally {
      running.kill();
    }
  });

  it('writes temporary files under names that carry its process id', async () => {
    const { dir, stores } = await group(1);
    const writer = stores[0]!.createBodyWriter()!;
    await writer.write(Buffer.from('partial body'));
    const temps = readdirSync(dir).filter((sub) => /^[0-9a-f]{2}$/.test(sub)).flatMap((sub) => readdirSync(join(dir, sub))).filter((name) => name.endsWith('.tmp'));
    expect(temps).toHaveLength(1);
    expect(temps[0]).toMatch(new RegExp(`^[0-9a-f]{32}\\.body\\.${process.pid}\\.tmp$`));
    writer.release();
  });

  it('refuses a directory whose lock does not name its primary', async () => {
    const dir = join(root, String(dirs++));
    await claimDirectory(dir);
    const store = new DiskStore({ dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: Date.now, shared: { lockHolder: process.pid + 1, since: Date.now(), announce: () => undefined } });
    await store.ready;
    await expect(store.set(testEntry('k'))).rejects.toThrow(/not locked by this worker's primary/);
    await store.close();
  });
});

describe('a copy written by another worker', () => {
  it('replaces an older copy here even when it is already past its delete time', async () => {
    const { stores, settled } = await group(2);
    const [a, b] = stores as [DiskStore, DiskStore];
    const fresh = testEntry('k', { body: Buffer.from('body'), deleteAt: Date.now() + 60_000 });
    await a.set(fresh);
    await settled();
    expect(b.get('k')).toHaveLength(1);
    // As a soft purge of an entry with no grace writes it: gone at the next lookup.
    await a.set(entryWith(fresh, { freshUntil: Date.now() - 1, staleWhileRevalidateUntil: Date.now() - 1, staleIfErrorUntil: Date.now() - 1, deleteAt: Date.now() - 1 }));
    await settled();
    expect(b.get('k')).toBeUndefined();
  });
});
