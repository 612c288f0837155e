import { readFile as readFileCallback } from 'node:fs';
import { access, mkdir, readdir, readFile as readText, stat, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { CACHE_FILE, LOCK_FILE, MARKER_CONTENT, MARKER_FILE, PURGE_POSITION_FILE, SUBDIR, TEMP_FILE, writerOf } from './disk-files.js';
import { decodeMeta, type MetaRecord } from './disk-format.js';
import { checkSharedLock, isAlive, lockDirectory, type LockInfo, type LockOptions } from './disk-lock.js';

export { unlockDirectory } from './disk-lock.js';

/** What the boot scan needs from the disk tier. */
export interface ScanHost {
  readonly clock: () => number;
  /** Temporary files this process is writing right now. */
  readonly temps: ReadonlySet<string>;
  log(message: string): void;
  unlink(path: string): void;
  /** Whether the scan is no longer wanted (the directory was lost meanwhile): it stops early. */
  stopped?(): boolean;
  /** A body this process wrote or holds since it started (not an orphan). */
  isFresh(id: string): boolean;
  /** Indexes a record found on disk: `superseded` when a newer copy or a delete wins, `known` when this process wrote it. */
  adopt(record: MetaRecord, metaId: string): 'indexed' | 'known' | 'superseded';
  /**
   * Set when other workers write the directory meanwhile (epoch ms they
   * started): a temporary or unreferenced file is only a leftover if it was
   * last modified before then, and a body missing from the listing may have
   * been renamed into place since.
   */
  readonly sharedSince?: number;
}

/** The callback form: for many small files it costs far less than fs/promises' readFile. */
const readFile = promisify(readFileCallback);

/** Metadata files read at once; enough to keep the disk busy without a burst of open files. */
const READ_CONCURRENCY = 32;

/**
 * Rebuilds the index from the cache directory. It runs in the background
 * while requests are served: each entry becomes servable as soon as its
 * metadata file is read. Files that are damaged, foreign, left over from a
 * crash (temporary files, bodies no metadata names) or expired are removed.
 */
export async function scanDirectory(dir: string, host: ScanHost): Promise<void> {
  const metas: { path: string; id: string }[] = [];
  const bodies = new Map<string, string>();
  for (const top of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, top.name);
    if (top.name === MARKER_FILE || top.name === LOCK_FILE || top.name === PURGE_POSITION_FILE || top.name === 'lost+found') continue;
    // A lock being written or taken over by a claimer (disk-lock.ts), maybe another process's this very moment;
    // it is there for a moment, so one still there a minute later was left by a crash in between.
    if (top.name.startsWith(`${LOCK_FILE}.`)) {
      if (await modifiedBefore(path, Date.now() - LOCK_LEFTOVER_AFTER_MS)) {
        host.log(`disk cache: removed a lock file left by an interrupted claim, ${path}`);
        host.unlink(path);
      }
      continue;
    }
    if (host.stopped?.() === true) return;
    if (!top.isDirectory() || !SUBDIR.test(top.name)) {
      skipForeign(path, top.isDirectory(), host);
      continue;
    }
    for (const item of await readdir(path, { withFileTypes: true })) {
      const itemPath = join(path, item.name);
      const match = CACHE_FILE.exec(item.name);
      if (item.isFile() && match !== null) {
        if (match[2] === 'meta') metas.push({ path: itemPath, id: match[1]! });
        else bodies.set(match[1]!, itemPath);
      } else if (item.isFile() && TEMP_FILE.test(item.name)) {
        // Left by a write that a crash interrupted; never renamed, so never part of an entry.
        if (!host.temps.has(itemPath) && (await leftOver(itemPath, item.name, host))) host.unlink(itemPath);
      } else {
        skipForeign(itemPath, item.isDirectory(), host);
      }
    }
  }

  let next = 0;
  const worker = async () => {
    while (next < metas.length && host.stopped?.() !== true) {
      const meta = metas[next++]!;
      await indexOne(meta.path, meta.id, bodies, host);
    }
  };
  await Promise.all(Array.from({ length: READ_CONCURRENCY }, worker));

  // Bodies no metadata file names: a crash came between writing the body and its metadata.
  let orphans = 0;
  for (const [id, path] of bodies) {
    if (host.stopped?.() === true) return;
    if (host.isFresh(id) || !(await leftOver(path, basename(path), host))) continue;
    host.unlink(path);
    orphans++;
  }
  if (orphans > 0) host.log(`disk cache: removed ${orphans} body file(s) that no entry refers to`);
}

async function indexOne(path: string, metaId: string, bodies: ReadonlyMap<string, string>, host: ScanHost): Promise<void> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    // Removed meanwhile (a delete or replacement by this process): nothing to index.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const record = decodeMeta(bytes);
  if (typeof record === 'string') {
    host.log(`disk cache: removed damaged metadata file ${path} (${record})`);
    host.unlink(path);
    return;
  }
  if (!bodies.has(record.body.id) && !host.isFresh(record.body.id) && !(await renamedSince(path, record.body.id, host))) {
    host.log(`disk cache: removed metadata file ${path} whose body file is missing`);
    host.unlink(path);
    return;
  }
  if (record.entry.deleteAt <= host.clock() || host.adopt(record, metaId) === 'superseded') host.unlink(path);
}

/**
 * Whether a temporary or unreferenced file is a crash's leftover rather than
 * another worker's work in progress: alone in the directory, every such file
 * is; shared, one from before the workers started, or a temporary file whose
 * writer (named in it) is another process no longer running, such as a
 * worker killed mid-write that the primary has replaced.
 */
async function leftOver(path: string, name: string, host: ScanHost): Promise<boolean> {
  if (host.sharedSince === undefined) return true;
  const writer = writerOf(name);
  if (writer !== undefined && writer !== process.pid && !isAlive(writer)) return true;
  try {
    return (await stat(path)).mtimeMs < host.sharedSince;
  } catch {
    return false;
  }
}

/** How old a claimer's lock file (written, or moved aside) must be to be taken for a crash's leftover. */
const LOCK_LEFTOVER_AFTER_MS = 60_000;

/**
 * Whether the file was last modified before `time` (epoch ms). A stale lock
 * moved aside keeps its old time: removing it under its claimer only makes
 * that claimer look again (disk-lock.ts removeStale); a live holder's lock
 * moved aside a moment is recent, and is left.
 */
async function modifiedBefore(path: string, time: number): Promise<boolean> {
  return stat(path).then(
    (info) => info.mtimeMs < time,
    () => false,
  );
}

/** With other workers writing, a body the listing missed may have been renamed into place after its directory was read. */
async function renamedSince(metaPath: string, bodyId: string, host: ScanHost): Promise<boolean> {
  if (host.sharedSince === undefined) return false;
  const bodyPath = join(metaPath, '..', '..', bodyId.slice(0, 2), `${bodyId}.body`);
  return access(bodyPath).then(
    () => true,
    () => false,
  );
}

/** Removes a stray file with one log line; a stray directory is only reported, never deleted wholesale. */
function skipForeign(path: string, isDirectory: boolean, host: ScanHost): void {
  if (isDirectory) {
    host.log(`disk cache: ignoring unexpected directory ${path}`);
    return;
  }
  host.log(`disk cache: removed unexpected file ${path}`);
  host.unlink(path);
}

/**
 * Creates the directory, or checks that an existing one is a Lacquer cache:
 * a non-empty directory without the marker file is refused, so a mistyped
 * path can never make Lacquer delete someone's files as "foreign".
 */
export async function claimDirectory(dir: string, sharedWith?: number, lock: LockOptions = {}): Promise<LockInfo> {
  if (sharedWith !== undefined) return checkSharedLock(dir, sharedWith);
  await mkdir(dir, { recursive: true });
  // lost+found is what a freshly made filesystem holds, e.g. a volume mounted here.
  const names = (await readdir(dir)).filter((name) => name !== 'lost+found');
  if (names.includes(MARKER_FILE)) return lockDirectory(dir, lock);
  if (names.length > 0) {
    throw new Error(`${dir} is not empty and is not a Lacquer cache directory (no ${MARKER_FILE}); give cache.disk.path an empty or new directory`);
  }
  await writeFile(join(dir, MARKER_FILE), MARKER_CONTENT);
  return lockDirectory(dir, lock);
}

