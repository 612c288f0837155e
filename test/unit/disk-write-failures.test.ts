import { once } from 'node:events';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import type { StartWriteThread } from '../../proxy/store/disk-write-thread.js';
import { WRITE_THREAD_SOURCE } from '../../proxy/store/disk-write-thread.js';
import { DiskStore } from '../../proxy/store/disk.js';
import { testEntry } from '../contract/store-contract.js';
import { holdResultsUntil } from '../helpers/held-write-thread.js';
import { tempDir } from '../helpers/tempdir.js';

/** The disk tier with its write thread in trouble: results that arrive late, a thread that cannot start, one that dies mid-job. */

const root = tempDir('lacquer-disk-write-failures-');
let dirs = 0;

function files(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .filter((sub) => /^[0-9a-f]{2}$/.test(sub))
    .flatMap((sub) => readdirSync(join(dir, sub)).filter((name) => name.endsWith(suffix)));
}

function openDisk(dir: string, events: string[] = [], startWriteThread?: StartWriteThread, onError?: (error: unknown) => void) {
  return new DiskStore({
    dir,
    maxSize: 1 << 30,
    maxObjectSize: 1 << 20,
    maxVariants: 4,
    clock: () => 1_000_000,
    listener: { onStore: (entry) => events.push(`store ${entry.key}`), onRemove: (entry, reason) => events.push(`${reason} ${entry.key}`) },
    ...(startWriteThread && { startWriteThread }),
    ...(onError && { onError }),
  });
}

/** A thread started by the given source the first time, the real one after that. */
function startOnce(worker: Worker): StartWriteThread {
  let first = true;
  return () => {
    if (!first) return new Worker(WRITE_THREAD_SOURCE, { eval: true });
    first = false;
    return worker;
  };
}

describe('the disk tier when its write thread is late, cannot start or dies', () => {
  it('keeps the metadata file of an entry written while the boot scan runs, even when the scan reads it before the write reports', async () => {
    const dir = join(root, String(dirs++));
    const before = openDisk(dir);
    await Promise.all(Array.from({ length: 2000 }, (_, i) => before.set(testEntry(`old-${i}`, { bodyBytes: 2000 }))));
    await before.close();

    // The real thread, its results held back until the boot scan is done: every file it renames is there for the scan
    // to read before the store hears that its write is done.
    const gate = join(root, `gate-${dirs}`);
    const held = holdResultsUntil(gate);
    const worker = new Worker(held + WRITE_THREAD_SOURCE, { eval: true });
    await once(worker, 'online');
    const events: string[] = [];
    const store = openDisk(dir, events, startOnce(worker));
    const writes = Array.from({ length: 300 }, (_, i) => store.set(testEntry(`new-${i}`, { bodyBytes: 10_000 })));
    await store.ready;
    writeFileSync(gate, '');
    await Promise.all(writes);
    await store.close();

    expect(events.filter((event) => !event.startsWith('store '))).toEqual([]);
    // Each new entry told once, whether the scan or the write indexed it.
    expect(events.filter((event) => event.startsWith('store new-')).length).toBe(300);
    expect(files(dir, '.meta').length).toBe(2300);
    const again = openDisk(dir);
    await again.ready;
    expect(again.stats().entries).toBe(2300);
    await again.close();
  });

  it('fails its writes, never the process, when the write thread cannot start, and serves nothing it did not store', async () => {
    const dir = join(root, String(dirs++));
    const errors: unknown[] = [];
    const store = openDisk(dir, [], () => {
      throw new Error('worker threads are not allowed');
    }, (error) => errors.push(error));
    await store.ready;
    await expect(store.set(testEntry('a', { bodyBytes: 1000 }))).rejects.toThrow(/not allowed/);
    await expect(store.set(testEntry('b', { bodyBytes: 1000 }))).rejects.toThrow(/not allowed/);
    expect(store.get('a')).toBeUndefined();
    expect(store.stats().entries).toBe(0);
    // Reported once when the directory was claimed and the thread was to start.
    expect(errors.map(String)).toEqual(['Error: worker threads are not allowed']);
    await store.close();
    expect([...files(dir, '.body'), ...files(dir, '.meta')]).toEqual([]);
  });

  it('puts the body file in place before the metadata that names it: a thread that dies between the two leaves no entry', async () => {
    const dir = join(root, String(dirs++));
    // The real thread, except that it dies right after its first rename.
    const diesAfterOneRename = `
      const fsForTest = require('node:fs');
      const rename = fsForTest.renameSync;
      fsForTest.renameSync = (from, to) => { rename(from, to); process.exit(7); };
    `;
    const store = openDisk(dir, [], startOnce(new Worker(diesAfterOneRename + WRITE_THREAD_SOURCE, { eval: true })));
    await store.ready;
    await expect(store.set(testEntry('a', { bodyBytes: 5000 }))).rejects.toThrow(/disk write thread stopped: exit code 7/);
    // The one file renamed is the body; no metadata names a missing body.
    expect(files(dir, '.body').length).toBe(1);
    expect(files(dir, '.meta')).toEqual([]);
    expect(store.get('a')).toBeUndefined();
    // The thread started anew writes the next entry whole.
    await store.set(testEntry('b', { bodyBytes: 5000 }));
    await store.close();

    const again = openDisk(dir);
    await again.ready;
    expect(again.get('a')).toBeUndefined();
    expect(again.get('b')).toHaveLength(1);
    await again.close();
    // The body no metadata names is an orphan, removed at boot.
    expect(files(dir, '.body').length).toBe(1);
  });
});
