import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { LOCK_FILE } from './disk-files.js';

/**
 * One process (or one cluster primary with its workers) per cache
 * directory: another one's boot scan would take this one's files in
 * progress for crash leftovers.
 *
 * The lock file names the holder: `pid host nonce`. A pid alone says little
 * in containers, where every replica may be pid 1 on a shared volume, so:
 *  - on the same host, the pid is checked: a live other process holds the
 *    directory; a dead one, or our own pid from an earlier run (a container
 *    restarted after a crash), left a stale lock that is taken over;
 *  - the same nonce is this very process: a second store on the directory;
 *  - from another host the pid cannot be checked, so the holder refreshes
 *    the file's time while it runs, and a lock not refreshed for
 *    STALE_AFTER_MS is taken over.
 */

const NONCE = randomUUID();
const HOST = hostname();
const REFRESH_EVERY_MS = 5_000;
const STALE_AFTER_MS = 30_000;

const heartbeats = new Map<string, NodeJS.Timeout>();

interface Holder {
  readonly pid: number;
  /** Absent in locks written before hosts were recorded: taken as this host. */
  readonly host: string | undefined;
  readonly nonce: string | undefined;
}

export async function lockDirectory(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  try {
    await writeLock(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const holder = await readHolder(path);
    const refusal = holder === undefined ? undefined : await stillHeld(path, holder);
    if (refusal !== undefined) throw new Error(`${dir} is in use by ${refusal}; give each process its own cache.disk.path`);
    await unlink(path).catch(() => undefined);
    await writeLock(path);
  }
  startHeartbeat(path);
}

/** A worker uses the directory its primary claimed: the lock must name that primary. */
export async function checkSharedLock(dir: string, primaryPid: number): Promise<void> {
  const holder = await readHolder(join(dir, LOCK_FILE));
  if (holder?.pid !== primaryPid) {
    throw new Error(`${dir} is not locked by this worker's primary (pid ${primaryPid}${holder === undefined ? '; there is no lock' : `; the lock names pid ${holder.pid}`})`);
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
  if (holder.host === undefined || holder.host === HOST) {
    if (holder.pid === process.pid) return undefined;
    return isAlive(holder.pid) ? `another Lacquer process (pid ${holder.pid})` : undefined;
  }
  const refreshed = await stat(path).then((info) => info.mtimeMs, () => 0);
  return Date.now() - refreshed < STALE_AFTER_MS ? `another Lacquer process (pid ${holder.pid} on ${holder.host})` : undefined;
}

async function writeLock(path: string): Promise<void> {
  await writeFile(path, `${process.pid} ${HOST} ${NONCE}\n`, { flag: 'wx' });
}

async function readHolder(path: string): Promise<Holder | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const [pid = '', host, nonce] = text.trim().split(/\s+/);
  const number = Number(pid);
  return Number.isInteger(number) && number > 0 ? { pid: number, host, nonce } : undefined;
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
