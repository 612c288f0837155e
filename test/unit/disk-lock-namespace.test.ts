import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { DiskStore } from '../../proxy/store/disk.js';
import { testEntry } from '../contract/store-contract.js';
import { age, waitingDiskOptions, writeLock, type Seen } from '../helpers/lock-files.js';
import { tempDir } from '../helpers/tempdir.js';

/*
 * Two processes on one host but in different PID namespaces (two containers
 * with one hostname on a shared volume): a pid in the other's lock means
 * nothing here. "Another namespace" is simulated by writing the lock file by
 * hand with a namespace that is not ours; its heartbeat is the file's
 * modification time, as disk-lock.ts judges it.
 */

const root = tempDir('lacquer-disk-ns-');
let dirs = 0;
/** Far above any kernel's pid limit: no process here has it. */
const DEAD_PID = 99_999_999;
/** Not a namespace this process can be in (the kernel's are inode numbers far above 1). */
const OTHER_NAMESPACE = 'pid:[1]';
const OWN_NAMESPACE = existsSync('/proc/self/ns/pid') ? readlinkSync('/proc/self/ns/pid') : undefined;
const RETRY_MS = 20;

const open: DiskStore[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((store) => store.close()));
});

function openDisk(dir: string, seen: Seen = { errors: [], logs: [] }): DiskStore {
  const store = new DiskStore(waitingDiskOptions(dir, seen, RETRY_MS));
  open.push(store);
  return store;
}

/** A cache directory holding entry `a`, as a store that stopped left it (no lock). */
async function cacheDirWithEntry(): Promise<string> {
  const dir = join(root, String(dirs++));
  const first = new DiskStore({ dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: () => 1_000_000 });
  await first.set(testEntry('a'));
  await first.close();
  expect(existsSync(join(dir, 'lacquer.lock'))).toBe(false);
  return dir;
}

async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('the directory lock across PID namespaces on one host', () => {
  it.skipIf(OWN_NAMESPACE === undefined)('records the PID namespace in the lock', async () => {
    const dir = join(root, String(dirs++));
    const store = openDisk(dir);
    await store.ready;
    expect(readFileSync(join(dir, 'lacquer.lock'), 'utf8').trim().split(' ')).toEqual([String(process.pid), hostname(), expect.any(String), OWN_NAMESPACE, expect.stringMatching(/^claimed=\d+$/)]);
  });

  it.skipIf(OWN_NAMESPACE === undefined)('does not take over a fresh lock from another namespace, though its pid is dead here; the tier is off and tried again in the background', async () => {
    const dir = await cacheDirWithEntry();
    const lock = writeLock(dir, [DEAD_PID, hostname(), 'their-nonce', OTHER_NAMESPACE]);
    const written = readFileSync(lock, 'utf8');
    const seen = { errors: [] as unknown[], logs: [] as string[] };
    const store = openDisk(dir, seen);
    await store.ready;

    expect(String(seen.errors[0])).toContain(`in use by another Lacquer process (pid ${DEAD_PID} in PID namespace ${OTHER_NAMESPACE} on this host`);
    expect(seen.logs.join('\n')).toContain('the disk tier is off');
    expect(store.waitingForDirectory).toBe(true);
    expect(store.inUse).toBe(false);
    // Off, not waiting: nothing is indexed from the other holder's directory, and a write fails at once.
    expect(store.get('a')).toBeUndefined();
    await expect(store.set(testEntry('b'))).rejects.toThrow(/in use by another Lacquer process/);
    expect(store.createBodyWriter()).toBeUndefined();

    // Several attempts later, the other holder's lock is still there, untouched.
    await until(() => store.claimAttempts >= 3, 'three claims tried again');
    expect(readFileSync(lock, 'utf8')).toBe(written);
    expect(store.waitingForDirectory).toBe(true);
    expect(store.get('a')).toBeUndefined();
  });

  it.skipIf(OWN_NAMESPACE === undefined)('takes over a lock from another namespace in the background once its heartbeat is stale, then indexes the directory and stores entries', async () => {
    const dir = await cacheDirWithEntry();
    const lock = writeLock(dir, [DEAD_PID, hostname(), 'their-nonce', OTHER_NAMESPACE]);
    const seen = { errors: [] as unknown[], logs: [] as string[] };
    const store = openDisk(dir, seen);
    await store.ready;
    expect(store.waitingForDirectory).toBe(true);

    // The other holder stops refreshing its lock: two minutes without a heartbeat.
    age(lock, 120_000);
    await until(() => !store.waitingForDirectory, 'the directory taken over');
    await store.ready;
    expect(store.inUse).toBe(true);

    expect(seen.logs.join('\n')).toContain('is free now');
    expect(seen.logs.join('\n')).toContain('index rebuilt');
    expect(readFileSync(lock, 'utf8').trim().split(' ')).toEqual([String(process.pid), hostname(), expect.any(String), OWN_NAMESPACE, expect.stringMatching(/^claimed=\d+$/)]);
    // The boot scan it skipped ran: what the other holder stored is found, and new entries are stored.
    expect(store.get('a')).toHaveLength(1);
    await store.set(testEntry('b'));
    expect(store.get('b')).toHaveLength(1);
    expect(store.stats().entries).toBe(2);
    // Errors: only the first refusal.
    expect(seen.errors).toHaveLength(1);

    await store.close();
    expect(existsSync(lock)).toBe(false);
  });

  it.skipIf(OWN_NAMESPACE === undefined)('takes a lock from its own namespace whose pid is dead at once, as before', async () => {
    const dir = await cacheDirWithEntry();
    writeLock(dir, [DEAD_PID, hostname(), 'their-nonce', OWN_NAMESPACE!]);
    const seen = { errors: [] as unknown[], logs: [] as string[] };
    const store = openDisk(dir, seen);
    await store.ready;
    expect(seen.errors).toEqual([]);
    expect(store.waitingForDirectory).toBe(false);
    expect(store.claimAttempts).toBe(0);
    expect(store.get('a')).toHaveLength(1);
  });

  it('refuses a lock from its own namespace whose pid is alive, and takes it in the background once that holder releases it', async () => {
    const dir = await cacheDirWithEntry();
    // A live process that is not this one: the test runner's parent.
    const lock = writeLock(dir, [process.ppid, hostname(), 'their-nonce', ...(OWN_NAMESPACE === undefined ? [] : [OWN_NAMESPACE])]);
    const seen = { errors: [] as unknown[], logs: [] as string[] };
    const store = openDisk(dir, seen);
    await store.ready;
    expect(String(seen.errors[0])).toContain(`in use by another Lacquer process (pid ${process.ppid})`);
    expect(store.waitingForDirectory).toBe(true);

    // That holder stops and removes its lock.
    const { unlinkSync } = await import('node:fs');
    unlinkSync(lock);
    await until(() => !store.waitingForDirectory, 'the directory claimed');
    await store.ready;
    expect(store.get('a')).toHaveLength(1);
  });

  it('reads lock files written before namespaces were recorded by their pid, as before', async () => {
    const dir = await cacheDirWithEntry();
    // pid, host, nonce: a live pid holds the directory, whatever namespace wrote it.
    writeLock(dir, [process.ppid, hostname(), 'old-nonce']);
    const seen = { errors: [] as unknown[], logs: [] as string[] };
    const refused = openDisk(dir, seen);
    await refused.ready;
    expect(String(seen.errors[0])).toContain(`in use by another Lacquer process (pid ${process.ppid})`);
    await refused.close();

    // A dead pid in the same form is a crashed holder: taken at once.
    writeLock(dir, [DEAD_PID, hostname(), 'old-nonce']);
    const taken = openDisk(dir);
    await taken.ready;
    expect(taken.waitingForDirectory).toBe(false);
    expect(taken.get('a')).toHaveLength(1);
  });

  it.skipIf(OWN_NAMESPACE === undefined)('a worker does not take a lock naming its primary\'s pid from another namespace for its primary\'s, and comes into use once its primary\'s lock is there', async () => {
    const dir = await cacheDirWithEntry();
    // The primary is pid 1 here, and so is the other container's, which holds the directory.
    writeLock(dir, [1, hostname(), 'their-nonce', OTHER_NAMESPACE]);
    const seen = { errors: [] as unknown[], logs: [] as string[] };
    const worker = new DiskStore(waitingDiskOptions(dir, seen, RETRY_MS, 1));
    open.push(worker);
    await worker.ready;
    expect(String(seen.errors[0])).toContain("is not locked by this worker's primary (pid 1; the lock names pid 1 on");
    expect(worker.waitingForDirectory).toBe(true);
    expect(worker.get('a')).toBeUndefined();
    await until(() => worker.claimAttempts >= 2, 'two checks tried again');
    expect(worker.waitingForDirectory).toBe(true);

    // The primary took the directory over.
    writeLock(dir, [1, hostname(), 'primary-nonce', OWN_NAMESPACE!]);
    await until(() => !worker.waitingForDirectory, 'the worker\'s tier in use');
    await worker.ready;
    expect(worker.get('a')).toHaveLength(1);
    await worker.set(testEntry('b'));
    expect(worker.get('b')).toHaveLength(1);
    await worker.close();
    // The lock is the primary's: a worker leaves it.
    expect(readFileSync(join(dir, 'lacquer.lock'), 'utf8')).toContain('primary-nonce');
  });

  it.skipIf(OWN_NAMESPACE === undefined)('stops trying when closed: a lock that goes stale afterwards is left alone', async () => {
    const closing = await cacheDirWithEntry();
    const lock = writeLock(closing, [DEAD_PID, hostname(), 'their-nonce', OTHER_NAMESPACE]);
    const written = readFileSync(lock, 'utf8');
    const store = openDisk(closing);
    await store.ready;
    await until(() => store.claimAttempts >= 1, 'a claim tried again');
    await store.close();
    expect(store.waitingForDirectory).toBe(false);
    const attempts = store.claimAttempts;
    // Were it still trying, it would take this lock over now.
    age(lock, 120_000);

    // A second store, still trying, measures the time: several of its attempts later, the first made none.
    const other = await cacheDirWithEntry();
    writeLock(other, [DEAD_PID, hostname(), 'their-nonce', OTHER_NAMESPACE]);
    const control = openDisk(other);
    await control.ready;
    expect(control.waitingForDirectory).toBe(true);
    await until(() => control.claimAttempts >= 5, 'five claims by the other store');
    expect(store.claimAttempts).toBe(attempts);
    expect(readFileSync(lock, 'utf8')).toBe(written);
  });
});
