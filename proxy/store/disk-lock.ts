import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { link, readFile, rename, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { LOCK_FILE } from './disk-files.js';

/**
 * One process (or one cluster primary with its workers) per cache
 * directory: another one's boot scan would take this one's files in
 * progress for crash leftovers.
 *
 * The lock file names the holder: `pid host nonce namespace claimed=<ms>`,
 * the namespace its PID namespace (`pid:[4026531836]`, read from
 * /proc/self/ns/pid; left out where /proc is missing), the last field when
 * it took the directory (workers need it: see DiskStore.keepFoundIf). A pid alone says little in containers, where
 * every replica may be pid 1 on a shared volume, so:
 *  - the same nonce is this very process: a second store on the directory;
 *  - on the same host and in the same PID namespace, the pid is checked: a
 *    live other process holds the directory; a dead one, or our own pid from
 *    an earlier run (a container restarted after a crash), left a stale lock
 *    that is taken over; so is a lock not refreshed for STALE_AFTER_MS, even
 *    if its pid is alive (after a reboot, another process may have it);
 *  - from another host, or from another PID namespace on this host (two
 *    containers with one hostname on one volume), the pid means nothing here:
 *    it may be dead here and alive there, or name another process. The
 *    holder refreshes the file's time while it runs, and a lock not
 *    refreshed for STALE_AFTER_MS is taken over. A container restarted after
 *    a crash gets a new namespace, so it waits for its own old lock to go
 *    stale (DiskStore keeps trying in the background meanwhile).
 * A lock without a namespace (written before namespaces were recorded, or
 * where /proc is missing), or a process that cannot read its own, is judged
 * by the pid as before.
 */

const NONCE = randomUUID();
const HOST = hostname();
const NAMESPACE = ownPidNamespace();
/** Milliseconds between heartbeats of a held lock; a shorter claim retry (tests) refreshes more often, never less. */
export const REFRESH_EVERY_MS = 5_000;
const STALE_AFTER_MS = 30_000;
/** How often a store refused a directory tries again: a lock goes stale at most this long before it is noticed. */
export const CLAIM_RETRY_MS = REFRESH_EVERY_MS;
/** Internal, for tests that run Lacquer as a child process: milliseconds between claims instead of CLAIM_RETRY_MS. */
export const CLAIM_RETRY_ENV = 'LACQUER_INTERNAL_CLAIM_RETRY_MS';

/** The range the internal setting is held to: no busy loop below it, and no wait longer than the default above it. */
const CLAIM_RETRY_ENV_MIN_MS = 10;

/** Milliseconds between claims of a directory another holder keeps: CLAIM_RETRY_MS unless a test shortens it (held to 10 ms to CLAIM_RETRY_MS). */
export function claimRetryMs(env: NodeJS.ProcessEnv = process.env): number {
  const set = Number(env[CLAIM_RETRY_ENV]);
  if (!Number.isInteger(set) || set <= 0) return CLAIM_RETRY_MS;
  return Math.min(Math.max(set, CLAIM_RETRY_ENV_MIN_MS), CLAIM_RETRY_MS);
}

const heartbeats = new Map<string, NodeJS.Timeout>();

interface Holder {
  readonly pid: number;
  /** Absent in locks written before hosts were recorded: taken as this host. */
  readonly host: string | undefined;
  readonly nonce: string | undefined;
  /** Absent in locks written before namespaces were recorded, or where /proc is missing. */
  readonly namespace: string | undefined;
  /** Epoch ms the lock was written; absent in locks written before it was recorded. */
  readonly claimedAt: number | undefined;
}

/** The directory is held by another holder that may still run (or, for a worker, not yet by its primary): worth trying again later, unlike the other refusals. */
export class DirectoryHeldError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DirectoryHeldError';
  }
}

/** What a claim learnt from the lock it holds (or, for a worker, its primary's). */
export interface LockInfo {
  /** Epoch ms when the holder wrote the lock (took the directory); absent in locks written before it was recorded. */
  readonly claimedAt: number | undefined;
}

/** Attempts at one claim before a directory whose lock keeps changing under it is called held (tried again later). */
const CLAIM_ROUNDS = 4;

export interface LockOptions {
  /** Milliseconds between heartbeats; default REFRESH_EVERY_MS (tests shorten it). */
  readonly refreshMs?: number;
  /** The lock was found naming another holder (see startHeartbeat); the heartbeat has stopped. */
  readonly onLost?: (error: DirectoryHeldError) => void;
}

/**
 * Takes the directory's lock. The lock file is written whole under a name of
 * its own and link()ed into place, which fails if a lock is there: two
 * claimers never both create it, and a reader never sees a half-written one.
 * A stale lock is taken over by moving it aside first (rename), so that only
 * the lock that was judged is removed, never one another claimer wrote since.
 * `onLost` hears if the lock is found naming another holder later on (see
 * startHeartbeat).
 */
export async function lockDirectory(dir: string, options: LockOptions = {}): Promise<LockInfo> {
  const path = join(dir, LOCK_FILE);
  let refusal = 'other claimers taking it over at the same moment';
  for (let round = 0; round < CLAIM_ROUNDS; round++) {
    const claimedAt = Date.now();
    if (await placeLock(path, claimedAt)) {
      startHeartbeat(path, options.refreshMs ?? REFRESH_EVERY_MS, options.onLost);
      return { claimedAt };
    }
    const seen = await readFile(path, 'utf8').catch(() => undefined);
    // Gone since: released, or moved aside by another claimer; try again.
    if (seen === undefined) continue;
    const holder = parseHolder(seen);
    const held = holder === undefined ? undefined : await stillHeld(path, holder);
    if (held !== undefined) throw new DirectoryHeldError(`${dir} is in use by ${held}; give each process its own cache.disk.path`);
    if (!(await removeStale(path, seen))) refusal = 'another claimer that took it over just now';
  }
  throw new DirectoryHeldError(`${dir} is in use by ${refusal}`);
}

/**
 * Removes the lock at `path` if it still reads `seen` (the lock judged
 * stale): it is moved aside first, so a lock another claimer put there in
 * the meantime is put back rather than removed. Answers whether the stale
 * lock went.
 */
export async function removeStale(path: string, seen: string): Promise<boolean> {
  const aside = `${path}.${randomUUID()}.stale`;
  try {
    await rename(path, aside);
  } catch {
    // Gone already: another claimer moved it (and may hold the directory now).
    return false;
  }
  const moved = await readFile(aside, 'utf8').catch(() => undefined);
  if (moved !== seen) {
    // Another claimer's lock, written after this one judged the old one: it goes back. If a third claimer
    // took the empty place meanwhile, that one holds the directory, and the other's heartbeat finds its lock lost.
    await link(aside, path).catch(() => undefined);
  }
  await unlink(aside).catch(() => undefined);
  return moved === seen;
}

/** A worker uses the directory its primary claimed: the lock must name that primary (which may still be waiting for it). */
export async function checkSharedLock(dir: string, primaryPid: number): Promise<LockInfo> {
  const holder = await readHolder(join(dir, LOCK_FILE));
  if (holder === undefined) throw new DirectoryHeldError(`${dir} is not locked by this worker's primary (pid ${primaryPid}; there is no lock)`);
  const other = namedOther(dir, holder, primaryPid);
  if (other !== undefined) throw other;
  return { claimedAt: holder.claimedAt };
}

/**
 * For a worker whose primary held the lock: the error to report when the
 * lock now names another holder, else undefined. A lock that is missing or
 * cannot be read (moved aside a moment by a claimer judging it, or a
 * transient EMFILE/EIO) says nothing of a loss: the primary's heartbeat puts
 * a missing one back, and the next check looks again.
 */
export async function sharedLockLost(dir: string, primaryPid: number): Promise<DirectoryHeldError | undefined> {
  const holder = await readHolder(join(dir, LOCK_FILE));
  return holder === undefined ? undefined : namedOther(dir, holder, primaryPid);
}

function namedOther(dir: string, holder: Holder, primaryPid: number): DirectoryHeldError | undefined {
  // The pid alone is not enough: in another container on the volume, the other primary may be pid 1 as well.
  const ours = holder.pid === primaryPid && (holder.host === undefined || holder.host === HOST) && !otherNamespace(holder);
  if (ours) return undefined;
  const named = `the lock names pid ${holder.pid}${holder.host === undefined ? '' : ` on ${holder.host}`}${holder.namespace === undefined ? '' : ` in ${holder.namespace}`}`;
  return new DirectoryHeldError(`${dir} is not locked by this worker's primary (pid ${primaryPid}; ${named})`);
}

/** Releases the lock taken by lockDirectory (only if this process holds it). */
export async function unlockDirectory(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  clearInterval(heartbeats.get(path));
  heartbeats.delete(path);
  const holder = await readHolder(path);
  if (holder !== undefined && holder.pid === process.pid && (holder.nonce === undefined || holder.nonce === NONCE)) await unlink(path).catch(() => undefined);
}

/** Why the lock is still held, or undefined when it is stale. */
async function stillHeld(path: string, holder: Holder): Promise<string | undefined> {
  if (holder.nonce === NONCE) return 'another store in this process';
  const refreshed = await stat(path).then((info) => info.mtimeMs, () => 0);
  // A live Lacquer refreshes its lock every REFRESH_EVERY_MS, wherever it runs.
  const stale = Date.now() - refreshed >= STALE_AFTER_MS;
  const sameHost = holder.host === undefined || holder.host === HOST;
  if (sameHost && !otherNamespace(holder)) {
    if (holder.pid === process.pid) return undefined;
    // A live pid not refreshed for that long is not the holder: after a reboot, an unrelated process may have its number.
    return isAlive(holder.pid) && !stale ? `another Lacquer process (pid ${holder.pid})` : undefined;
  }
  if (stale) return undefined;
  const where = sameHost ? `in PID namespace ${holder.namespace} on this host` : `on ${holder.host}`;
  return `another Lacquer process (pid ${holder.pid} ${where}; its lock goes stale ${STALE_AFTER_MS / 1000} s after it stops)`;
}

/** Whether the holder's pid belongs to a PID namespace other than ours; unknown on either side counts as the same (judged by pid, as before namespaces were recorded). */
function otherNamespace(holder: Holder): boolean {
  return holder.namespace !== undefined && NAMESPACE !== undefined && holder.namespace !== NAMESPACE;
}

/**
 * Puts this process's lock in place unless one is there: written whole under
 * a name of its own, then linked to the lock's name (link fails with EEXIST
 * where a file is). The lock's fields: `pid host nonce [namespace] claimed=<ms>`;
 * readers that know only the first four ignore the last. (Where this process
 * has no namespace, such a reader that has one takes `claimed=` for one and
 * judges the lock by its heartbeat: slower to take over a dead holder's lock,
 * never quicker.)
 */
async function placeLock(path: string, claimedAt: number): Promise<boolean> {
  const fields = [process.pid, HOST, NONCE, ...(NAMESPACE === undefined ? [] : [NAMESPACE]), `${CLAIMED_FIELD}${claimedAt}`];
  const whole = `${path}.${randomUUID()}.new`;
  await writeFile(whole, `${fields.join(' ')}\n`, { flag: 'wx' });
  try {
    await link(whole, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  } finally {
    await unlink(whole).catch(() => undefined);
  }
}

const CLAIMED_FIELD = 'claimed=';

async function readHolder(path: string): Promise<Holder | undefined> {
  return parseHolder(await readFile(path, 'utf8').catch(() => ''));
}

function parseHolder(text: string): Holder | undefined {
  const [pid = '', host, nonce, ...rest] = text.trim().split(/\s+/);
  const number = Number(pid);
  if (!Number.isInteger(number) || number <= 0) return undefined;
  const namespace = rest[0] !== undefined && !rest[0].startsWith(CLAIMED_FIELD) ? rest[0] : undefined;
  const claimed = Number(rest.find((field) => field.startsWith(CLAIMED_FIELD))?.slice(CLAIMED_FIELD.length));
  return { pid: number, host, nonce, namespace, claimedAt: Number.isFinite(claimed) && claimed > 0 ? claimed : undefined };
}

/** This process's PID namespace (`pid:[inode]`), or undefined where /proc is missing (not Linux, /proc not mounted). */
function ownPidNamespace(): string | undefined {
  try {
    const link = readlinkSync('/proc/self/ns/pid');
    // A field of the lock file: no whitespace (the kernel's form never has any).
    return /^\S+$/.test(link) ? link : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Refreshes the lock's time while this process holds it. Each round first
 * reads the lock: one naming another holder (taken over while this process
 * could not refresh it, e.g. stopped for longer than STALE_AFTER_MS) is not
 * refreshed, and `onLost` hears of it. A missing one (moved aside a moment by
 * a claimer checking it, or removed by hand) is put back.
 */
function startHeartbeat(path: string, refreshMs: number, onLost: ((error: DirectoryHeldError) => void) | undefined): void {
  clearInterval(heartbeats.get(path));
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void refresh(path, () => heartbeats.get(path) === timer)
      .then((lostTo) => {
        if (lostTo === undefined || heartbeats.get(path) !== timer) return;
        clearInterval(timer);
        heartbeats.delete(path);
        onLost?.(new DirectoryHeldError(`${dirname(path)} was taken over by ${lostTo}; give each process its own cache.disk.path`));
      })
      // DirectoryClaim reports what its own callback throws; any other caller's failure here must not end the process.
      .catch((error: unknown) => process.emitWarning(`disk cache: handling a lost lock on ${path} failed: ${error instanceof Error ? error.message : String(error)}`))
      .finally(() => {
        busy = false;
      });
  }, refreshMs);
  timer.unref();
  heartbeats.set(path, timer);
}

/** One heartbeat: undefined while the lock is ours (refreshed), else whom it names now. `held`: not released meanwhile. */
async function refresh(path: string, held: () => boolean): Promise<string | undefined> {
  let holder = await readHolder(path);
  if (!held()) return undefined;
  if (holder === undefined && !(await placeLock(path, Date.now()).catch(() => false))) holder = await readHolder(path);
  if (holder !== undefined && holder.nonce !== NONCE) return `pid ${holder.pid}${holder.host === undefined ? '' : ` on ${holder.host}`}`;
  const now = new Date();
  await utimes(path, now, now).catch(() => undefined);
  return undefined;
}

/** Whether a process with this id runs (on this host, in this PID namespace). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
