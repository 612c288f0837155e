import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { DirectoryClaim } from '../../proxy/store/disk-claim.js';
import { CLAIM_RETRY_ENV, claimRetryMs, removeStale, unlockDirectory } from '../../proxy/store/disk-lock.js';
import { DiskStore } from '../../proxy/store/disk.js';
import { testEntry } from '../contract/store-contract.js';
import { age, waitingDiskOptions, writeLock, type Seen } from '../helpers/lock-files.js';
import { tempDir } from '../helpers/tempdir.js';

/*
 * Taking a lock over, and losing it: the lock file is written by hand to play
 * the other holder (another PID namespace: 'pid:[1]', which no process here
 * is in; its heartbeat is the file's modification time).
 */

const root = tempDir('lacquer-disk-takeover-');
let dirs = 0;
const OTHER_NAMESPACE = 'pid:[1]';
const OWN_NAMESPACE = existsSync('/proc/self/ns/pid') ? readlinkSync('/proc/self/ns/pid') : undefined;
const RETRY_MS = 20;

const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((item) => item.close()));
});

function openDisk(dir: string, seen: Seen, shared?: { lockHolder: number }): DiskStore {
  const store = new DiskStore(waitingDiskOptions(dir, seen, RETRY_MS, shared?.lockHolder));
  open.push(store);
  return store;
}

/** A cache directory holding entries `a` (tag `ta`) and `b` (tag `tb`), as a store that stopped left it (no lock). */
async function cacheDirWithEntries(): Promise<string> {
  const dir = join(root, String(dirs++));
  const first = new DiskStore({ dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, maxVariants: 4, clock: () => 1_000_000 });
  await first.set({ ...testEntry('a'), tags: ['ta'] });
  await first.set({ ...testEntry('b'), tags: ['tb'] });
  await first.close();
  return dir;
}

async function until(condition: () => boolean, what: string, withinMs = 15_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('taking a stale lock over', () => {
  it('moves aside only the lock it judged: one another claimer wrote since is put back, not removed', async () => {
    const dir = join(root, String(dirs++));
    mkdirSync(dir);
    const stale = writeLock(dir, [99_999_999, hostname(), 'old-nonce', OTHER_NAMESPACE], 120_000);
    const judged = readFileSync(stale, 'utf8');
    // Another claimer took it over between this one's judgement and its removal.
    const newer = `4242 ${hostname()} their-nonce ${OTHER_NAMESPACE} claimed=${Date.now()}\n`;
    writeFileSync(stale, newer);

    expect(await removeStale(stale, judged)).toBe(false);
    expect(readFileSync(stale, 'utf8')).toBe(newer);
    expect(readdirSync(dir)).toEqual(['lacquer.lock']);

    // The lock judged is still the one there: it goes.
    writeFileSync(stale, judged);
    expect(await removeStale(stale, judged)).toBe(true);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('takes over a lock from its own namespace whose pid is alive but which has not been refreshed for two minutes (that pid is another process now)', async () => {
    const dir = await cacheDirWithEntries();
    // A live process that is not this one: the test runner's parent. After a reboot, a stale lock's pid may be anyone's.
    const lock = writeLock(dir, [process.ppid, hostname(), 'their-nonce', ...(OWN_NAMESPACE === undefined ? [] : [OWN_NAMESPACE])], 120_000);
    const seen: Seen = { errors: [], logs: [] };
    const store = openDisk(dir, seen);
    await store.ready;
    expect(seen.errors).toEqual([]);
    expect(store.inUse).toBe(true);
    expect(store.get('a')).toHaveLength(1);
    expect(readFileSync(lock, 'utf8').split(' ')[0]).toBe(String(process.pid));
  });
});

describe('the boot scan', () => {
  it("leaves alone a lock another claimer is writing or taking over this very moment (not a foreign file)", async () => {
    const dir = await cacheDirWithEntries();
    const writing = join(dir, 'lacquer.lock.0123.new');
    const aside = join(dir, 'lacquer.lock.4567.stale');
    writeFileSync(writing, `4242 ${hostname()} their-nonce\n`);
    writeFileSync(aside, `4243 ${hostname()} other-nonce\n`);
    const seen: Seen = { errors: [], logs: [] };
    const store = openDisk(dir, seen);
    await store.ready;
    expect(store.get('a')).toHaveLength(1);
    expect(existsSync(writing) && existsSync(aside)).toBe(true);
    expect(seen.logs.join('\n')).not.toContain('unexpected');
  });

  it('removes such a file still there a minute later: left by a claim a crash interrupted', async () => {
    const dir = await cacheDirWithEntries();
    const left = join(dir, 'lacquer.lock.89ab.new');
    const recent = join(dir, 'lacquer.lock.cdef.new');
    writeFileSync(left, `4242 ${hostname()} their-nonce\n`);
    writeFileSync(recent, `4243 ${hostname()} other-nonce\n`);
    age(left, 120_000);
    const seen: Seen = { errors: [], logs: [] };
    const store = openDisk(dir, seen);
    await store.ready;
    await until(() => !existsSync(left), 'the leftover removed');
    expect(existsSync(recent)).toBe(true);
    expect(seen.logs.join('\n')).toContain(`removed a lock file left by an interrupted claim, ${left}`);
  });
});

describe('losing the lock', () => {
  it.skipIf(OWN_NAMESPACE === undefined)('turns the tier off when its lock is found naming another holder, lets go of its index, and claims again until that lock goes stale', async () => {
    const dir = await cacheDirWithEntries();
    const seen: Seen = { errors: [], logs: [] };
    const store = openDisk(dir, seen);
    await store.ready;
    expect(store.inUse).toBe(true);
    expect(store.get('a')).toHaveLength(1);

    // Another Lacquer took the directory over (this one, say, was stopped past the staleness window).
    const lock = writeLock(dir, [4242, hostname(), 'their-nonce', OTHER_NAMESPACE, `claimed=${Date.now()}`]);
    await until(() => store.waitingForDirectory, 'the loss noticed');
    expect(store.inUse).toBe(false);
    expect(store.get('a')).toBeUndefined();
    expect(store.stats()).toMatchObject({ entries: 0, bytes: 0 });
    await expect(store.set(testEntry('c'))).rejects.toThrow(/was taken over by pid 4242/);
    expect(seen.logs.join('\n')).toContain('is another holder\'s now; the disk tier is off');
    // Its files are the other holder's: nothing was removed, and its lock is not refreshed from here.
    age(lock, 10_000);
    const aged = Math.round(Date.now() - 10_000);
    await until(() => store.claimAttempts >= 3, 'three claims tried again');
    expect(Math.abs(readMtime(lock) - aged)).toBeLessThan(2_000);
    expect(readFileSync(lock, 'utf8')).toContain('their-nonce');

    // That holder stops: its lock goes stale, and this store takes the directory again, entries and all.
    age(lock, 120_000);
    await until(() => store.inUse, 'the directory taken again');
    await store.ready;
    expect(store.get('a')).toHaveLength(1);
    expect(store.get('b')).toHaveLength(1);
  });

  it.skipIf(OWN_NAMESPACE === undefined)('a scan from before the loss does not end the scan of a later claim: deletes made during that scan stick', { timeout: 120_000 }, async () => {
    // Enough entries that the first scan is still reading when the directory is lost and taken again.
    const count = 5_000;
    const dir = join(root, String(dirs++));
    const first = new DiskStore({ dir, maxSize: 1 << 30, maxObjectSize: 1 << 20, maxVariants: 4, clock: () => 1_000_000 });
    for (let from = 0; from < count; from += 200) {
      await Promise.all(Array.from({ length: Math.min(200, count - from) }, (_, i) => first.set(testEntry(`k${from + i}`))));
    }
    await first.close();

    const seen: Seen = { errors: [], logs: [] };
    const store = new DiskStore({ dir, maxSize: 1 << 30, maxObjectSize: 1 << 20, maxVariants: 4, clock: () => 1_000_000, claimRetryMs: RETRY_MS, onError: (error) => seen.errors.push(error), log: (line) => seen.logs.push(line) });
    open.push(store);
    await until(() => store.inUse, 'the directory claimed');
    const lock = writeLock(dir, [4242, hostname(), 'their-nonce', OTHER_NAMESPACE, `claimed=${Date.now()}`]);
    await until(() => store.waitingForDirectory, 'the loss noticed');
    age(lock, 120_000);
    await until(() => store.inUse, 'the directory taken again');
    // The later claim's scan runs (the first one, from before the loss, may still be reading too): every key is deleted meanwhile (a purge of everything, say).
    for (let i = 0; i < count; i++) store.delete(`k${i}`);
    await store.ready;
    expect(store.inUse).toBe(true);
    expect(store.stats().entries).toBe(0);
    expect(store.get('k0')).toBeUndefined();
    expect(store.get(`k${count - 1}`)).toBeUndefined();
  });

  it('puts its lock back if it goes missing while held', async () => {
    const dir = await cacheDirWithEntries();
    const store = openDisk(dir, { errors: [], logs: [] });
    await store.ready;
    const lock = join(dir, 'lacquer.lock');
    const nonce = readFileSync(lock, 'utf8').split(' ')[2];
    unlinkSync(lock);
    await until(() => existsSync(lock), 'the lock put back');
    expect(readFileSync(lock, 'utf8').split(' ')[2]).toBe(nonce);
    expect(store.inUse).toBe(true);
  });

  it.skipIf(OWN_NAMESPACE === undefined)("a worker's tier goes off when the lock stops naming its primary", async () => {
    const dir = await cacheDirWithEntries();
    writeLock(dir, [1, hostname(), 'primary-nonce', OWN_NAMESPACE!, `claimed=${Date.now()}`]);
    const seen: Seen = { errors: [], logs: [] };
    const worker = openDisk(dir, seen, { lockHolder: 1 });
    await worker.ready;
    expect(worker.get('a')).toHaveLength(1);

    writeLock(dir, [1, hostname(), 'their-nonce', OTHER_NAMESPACE, `claimed=${Date.now()}`]);
    await until(() => worker.waitingForDirectory, 'the loss noticed');
    expect(worker.get('a')).toBeUndefined();

    // The primary takes it back; the worker follows.
    writeLock(dir, [1, hostname(), 'primary-nonce-2', OWN_NAMESPACE!, `claimed=${Date.now()}`]);
    await until(() => worker.inUse, "the worker's tier in use again");
    await worker.ready;
    expect(worker.get('a')).toHaveLength(1);
  });
});

describe("a worker's check of its primary's lock", () => {
  it.skipIf(OWN_NAMESPACE === undefined)('takes a lock that is missing or cannot be read for a passing state, not a loss: only one naming another holder turns the tier off', async () => {
    const dir = await cacheDirWithEntries();
    const lock = writeLock(dir, [1, hostname(), 'primary-nonce', OWN_NAMESPACE!, `claimed=${Date.now()}`]);
    const seen: Seen = { errors: [], logs: [] };
    const worker = openDisk(dir, seen, { lockHolder: 1 });
    await worker.ready;
    expect(worker.get('a')).toHaveLength(1);

    // The lock goes missing, then cannot be read (a directory in its place: EISDIR, as EIO or EMFILE would fail), for many checks.
    unlinkSync(lock);
    await sleep(RETRY_MS * 15);
    mkdirSync(lock);
    await sleep(RETRY_MS * 15);
    expect(worker.waitingForDirectory).toBe(false);
    expect(worker.inUse).toBe(true);
    expect(worker.get('a')).toHaveLength(1);
    expect(seen.errors).toEqual([]);

    // A lock naming another holder is a loss, reported as such.
    rmdirSync(lock);
    writeLock(dir, [4242, hostname(), 'their-nonce', OTHER_NAMESPACE, `claimed=${Date.now()}`]);
    await until(() => worker.waitingForDirectory, 'the loss noticed');
    expect(worker.get('a')).toBeUndefined();
    expect(String(seen.errors[0])).toContain('the lock names pid 4242');
  });
});

describe('purges made while a worker waited', () => {
  it.skipIf(OWN_NAMESPACE === undefined)("apply to the entries found once the primary takes the directory: records older than the primary's takeover (named in its lock) are checked, newer ones kept", async () => {
    const dir = await cacheDirWithEntries();
    writeLock(dir, [1, hostname(), 'their-nonce', OTHER_NAMESPACE]);
    const seen: Seen = { errors: [], logs: [] };
    const worker = openDisk(dir, seen, { lockHolder: 1 });
    // A tag purge of `ta` reached this worker while it waited.
    worker.keepFoundIf((_key, tags) => !tags.includes('ta'));
    await worker.ready;
    expect(worker.waitingForDirectory).toBe(true);

    // The primary takes the directory over; the lock names the moment.
    const takenAt = Date.now();
    writeLock(dir, [1, hostname(), 'primary-nonce', OWN_NAMESPACE!, `claimed=${takenAt}`]);
    await until(() => worker.inUse, "the worker's tier in use");
    await worker.ready;
    expect(worker.get('b')).toHaveLength(1);
    expect(worker.get('a')).toBeUndefined();

    // Another worker stores `a` anew after the takeover (after the purge, which it applied too): that copy is kept.
    const later = { ...testEntry('a'), tags: ['ta'] };
    const { body: _body, ...meta } = later;
    worker.applyPeerChange({
      kind: 'stored',
      metaId: 'f'.repeat(32),
      record: { entry: meta, body: { id: 'f'.repeat(32), length: later.body.length, crc: 0 }, written: (takenAt + 1) * 1000 },
    });
    expect(worker.get('a')).toHaveLength(1);
  });
});

describe('a claim tried again in the background', () => {
  it.skipIf(OWN_NAMESPACE === undefined)('reports an error thrown while coming into use rather than leaving it unhandled', async () => {
    const dir = await cacheDirWithEntries();
    const lock = writeLock(dir, [4242, hostname(), 'their-nonce', OTHER_NAMESPACE]);
    const failures: unknown[] = [];
    const claim = new DirectoryClaim({
      dir,
      retryMs: RETRY_MS,
      onClaimed: () => {
        throw new Error('scan could not start');
      },
      onFailed: (error) => failures.push(error),
    });
    open.push({ close: () => claim.stop().then(() => unlockDirectory(dir)) });
    await expect(claim.first).rejects.toThrow(/in use by another Lacquer process/);
    age(lock, 120_000);
    await until(() => failures.length > 0, 'the failure reported');
    expect(String(failures[0])).toContain('scan could not start');
    expect(claim.retrying).toBe(false);
  });
});

function readMtime(path: string): number {
  return statSync(path).mtimeMs;
}

describe('a loss whose handler throws', () => {
  it.skipIf(OWN_NAMESPACE === undefined)('is reported (not an unhandled rejection), and the directory is claimed again: the holder\'s heartbeat', async () => {
    const dir = await cacheDirWithEntries();
    const failures: unknown[] = [];
    let claimed = 0;
    const claim = new DirectoryClaim({
      dir,
      retryMs: RETRY_MS,
      onClaimed: () => claimed++,
      onFailed: (error) => failures.push(error),
      onLost: () => {
        throw new Error('listener broke');
      },
    });
    open.push({ close: () => claim.stop().then(() => unlockDirectory(dir)) });
    await claim.first;
    const lock = writeLock(dir, [4242, hostname(), 'their-nonce', OTHER_NAMESPACE, `claimed=${Date.now()}`]);
    await until(() => failures.length > 0, 'the failure reported');
    expect(String(failures[0])).toContain('listener broke');
    expect(claim.retrying).toBe(true);
    age(lock, 120_000);
    await until(() => claimed === 1, 'the directory claimed again');
  });

  it.skipIf(OWN_NAMESPACE === undefined)("is reported (not an unhandled rejection): a worker's check", async () => {
    const dir = await cacheDirWithEntries();
    writeLock(dir, [1, hostname(), 'primary-nonce', OWN_NAMESPACE!, `claimed=${Date.now()}`]);
    const failures: unknown[] = [];
    const claim = new DirectoryClaim({
      dir,
      sharedWith: 1,
      retryMs: RETRY_MS,
      onClaimed: () => undefined,
      onFailed: (error) => failures.push(error),
      onLost: () => {
        throw new Error('listener broke');
      },
    });
    open.push({ close: () => claim.stop() });
    await claim.first;
    writeLock(dir, [4242, hostname(), 'their-nonce', OTHER_NAMESPACE, `claimed=${Date.now()}`]);
    await until(() => failures.length > 0, 'the failure reported');
    expect(String(failures[0])).toContain('listener broke');
    expect(claim.retrying).toBe(true);
  });
});

describe('the claim retry and the heartbeat', () => {
  it('holds the internal retry setting to 10 ms .. 5 s (a longer one would let a live holder\'s lock go stale)', () => {
    expect(claimRetryMs({ [CLAIM_RETRY_ENV]: '100' })).toBe(100);
    expect(claimRetryMs({ [CLAIM_RETRY_ENV]: '1' })).toBe(10);
    expect(claimRetryMs({ [CLAIM_RETRY_ENV]: '60000' })).toBe(5_000);
    expect(claimRetryMs({ [CLAIM_RETRY_ENV]: 'soon' })).toBe(5_000);
    expect(claimRetryMs({})).toBe(5_000);
  });

  it('refreshes a held lock at least every 5 s however long the retry between claims', { timeout: 60_000 }, async () => {
    const dir = await cacheDirWithEntries();
    const claim = new DirectoryClaim({ dir, retryMs: 60_000, onClaimed: () => undefined, onFailed: () => undefined });
    open.push({ close: () => claim.stop().then(() => unlockDirectory(dir)) });
    await claim.first;
    const lock = join(dir, 'lacquer.lock');
    // Twenty seconds without a refresh: the next heartbeat (due within 5 s) brings it back to now, well before the 30 s staleness window.
    age(lock, 20_000);
    await until(() => Date.now() - readMtime(lock) < 10_000, 'the lock refreshed', 25_000);
  });
});
