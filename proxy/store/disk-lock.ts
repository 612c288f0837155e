import { randomUUID } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { LOCK_FILE } from './disk-files.js';

/**
 * One process (or one cluster primary with its workers) per cache
 * directory: another one's boot scan would take this one's files in
 * progress for crash leftovers.
 *
 * The lock file names the holder: `pid host nonce namespace`, the last its
 * PID namespace (`pid:[4026531836]`, read from /proc/self/ns/pid; left out
 * where /proc is missing). A pid alone says little in containers, where
 * every replica may be pid 1 on a shared volume, so:
 *  - the same nonce is this very process: a second store on the directory;
 *  - on the same host and in the same PID namespace, the pid is checked: a
 *    live other process holds the directory; a dead one, or our own pid from
 *    an earlier run (a container restarted after a crash), left a stale lock
 *    that is taken over;
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
const REFRESH_EVERY_MS = 5_000;
const STALE_AFTER_MS = 30_000;
/** How often a store refused a directory tries again: a lock goes stale at most this long before it is noticed. */
export const CLAIM_RETRY_MS = REFRESH_EVERY_MS;

const heartbeats = new Map<string, NodeJS.Timeout>();

interface Holder {
  readonly pid: number;
  /** Absent in locks written before hosts were recorded: taken as this host. */
  readonly host: string | undefined;
  readonly nonce: string | undefined;
  /** Absent in locks written before namespaces were recorded, or where /proc is missing. */
  readonly namespace: string | undefined;
}

/** The directory is held by another holder that may still run (or, for a worker, not yet by its primary): worth trying again later, unlike the other refusals. */
export class DirectoryHeldError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DirectoryHeldError';
  }
}

export async function lockDirectory(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  try {
    await writeLock(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const holder = await readHolder(path);
    const refusal = holder === undefined ? undefined : await stillHeld(path, holder);
    if (refusal !== undefined) throw new DirectoryHeldError(`${dir} is in use by ${refusal}; give each process its own cache.disk.path`);
    await unlink(path).catch(() => undefined);
    await writeLock(path);
  }
  startHeartbeat(path);
}

/** A worker uses the directory its primary claimed: the lock must name that primary (which may still be waiting for it). */
export async function checkSharedLock(dir: string, primaryPid: number): Promise<void> {
  const holder = await readHolder(join(dir, LOCK_FILE));
  // The pid alone is not enough: in another container on the volume, the other primary may be pid 1 as well.
  const ours = holder !== undefined && holder.pid === primaryPid && (holder.host === undefined || holder.host === HOST) && !otherNamespace(holder);
  if (!ours) {
    const named = holder === undefined ? 'there is no lock' : `the lock names pid ${holder.pid}${holder.host === undefined ? '' : ` on ${holder.host}`}${holder.namespace === undefined ? '' : ` in ${holder.namespace}`}`;
    throw new DirectoryHeldError(`${dir} is not locked by this worker's primary (pid ${primaryPid}; ${named})`);
  }
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
  const sameHost = holder.host === undefined || holder.host === HOST;
  if (sameHost && !otherNamespace(holder)) {
    if (holder.pid === process.pid) return undefined;
    return isAlive(holder.pid) ? `another Lacquer process (pid ${holder.pid})` : undefined;
  }
  const refreshed = await stat(path).then((info) => info.mtimeMs, () => 0);
  if (Date.now() - refreshed >= STALE_AFTER_MS) return undefined;
  const where = sameHost ? `in PID namespace ${holder.namespace} on this host` : `on ${holder.host}`;
  return `another Lacquer process (pid ${holder.pid} ${where}; its lock goes stale ${STALE_AFTER_MS / 1000} s after it stops)`;
}

/** Whether the holder's pid belongs to a PID namespace other than ours; unknown on either side counts as the same (judged by pid, as before namespaces were recorded). */
function otherNamespace(holder: Holder): boolean {
  return holder.namespace !== undefined && NAMESPACE !== undefined && holder.namespace !== NAMESPACE;
}

async function writeLock(path: string): Promise<void> {
  const fields = [process.pid, HOST, NONCE, ...(NAMESPACE === undefined ? [] : [NAMESPACE])];
  await writeFile(path, `${fields.join(' ')}\n`, { flag: 'wx' });
}

async function readHolder(path: string): Promise<Holder | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const [pid = '', host, nonce, namespace] = text.trim().split(/\s+/);
  const number = Number(pid);
  return Number.isInteger(number) && number > 0 ? { pid: number, host, nonce, namespace } : undefined;
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

function startHeartbeat(path: string): void {
  clearInterval(heartbeats.get(path));
  const timer = setInterval(() => {
    const now = new Date();
    utimes(path, now, now).catch(() => undefined);
  }, REFRESH_EVERY_MS);
  timer.unref();
  heartbeats.set(path, timer);
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
