import { randomBytes } from 'node:crypto';
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { flat } from '../cache/compact.js';

/**
 * File names and atomic writes for the disk tier. Every file has a fresh
 * random id, so no two writes ever aim at the same name; files are spread
 * over 256 subdirectories by the id's first two hex digits.
 *
 *   <dir>/lacquer-cache.json     marks the directory as a Lacquer cache
 *   <dir>/lacquer.lock           the process using it (disk-lock.ts)
 *   <dir>/lacquer.lock.<id>.new  a lock being written, linked into place whole; .stale: one being taken over
 *   <dir>/ab/<id>.meta           an entry's metadata (disk-format.ts)
 *   <dir>/ab/<id>.body           a body, raw bytes
 *   <dir>/ab/<id>.<ext>.tmp      a file being written; renamed into place when complete
 */
export type FileKind = 'meta' | 'body';

export const MARKER_FILE = 'lacquer-cache.json';
/** Holds the pid of the process using the directory. */
export const LOCK_FILE = 'lacquer.lock';
/**
 * Where the purge stream's reader keeps its position (redis/cursor-file.ts):
 * it describes this directory's content, so it lives here, and the boot scan
 * must not take it for a foreign file.
 */
export const PURGE_POSITION_FILE = 'purge-stream.position';
export const MARKER_CONTENT = `${JSON.stringify({ format: 1, note: 'Lacquer disk cache; files here are managed by Lacquer' })}\n`;

export const SUBDIR = /^[0-9a-f]{2}$/;
export const CACHE_FILE = /^([0-9a-f]{32})\.(meta|body)$/;
/** A file being written: `<id>.<ext>.<pid>.tmp`, named with the writing process (`<id>.<ext>.tmp` from earlier versions). */
export const TEMP_FILE = /^[0-9a-f]{32}\.(meta|body)(?:\.(\d+))?\.tmp$/;

/**
 * The temporary name a file is written under. It names this process, so
 * that with workers sharing the directory, one whose writer has died (a
 * worker killed mid-write) is known to be a leftover at once (disk-scan.ts).
 */
export function tempPathOf(path: string): string {
  return `${path}.${process.pid}.tmp`;
}

/** The process that wrote a temporary file, from its name; undefined for a name without one. */
export function writerOf(tempName: string): number | undefined {
  const pid = TEMP_FILE.exec(tempName)?.[2];
  return pid === undefined ? undefined : Number(pid);
}

/** Random bytes drawn a page at a time: one call for 16 bytes costs about as much as one for 4 KiB. */
const ID_BYTES = 16;
let idPool = Buffer.alloc(0);
let idOffset = 0;

export function newId(): string {
  if (idOffset + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 256);
    idOffset = 0;
  }
  idOffset += ID_BYTES;
  return idPool.toString('hex', idOffset - ID_BYTES, idOffset);
}

export function pathOf(dir: string, id: string, kind: FileKind): string {
  // Flat: the index keeps a path per body for as long as it is stored (cache/compact.ts).
  return flat(join(dir, id.slice(0, 2), `${id}.${kind}`));
}

/** The id in a path made by pathOf. */
export function idOf(path: string): string {
  const name = path.slice(path.length - 37, path.length - 5);
  return name;
}

/** Creates the id's subdirectory on first use; never the cache directory itself, so a removed directory stays an error. */
export async function withSubdir<T>(path: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(dirname(path)).catch((mkdirError: NodeJS.ErrnoException) => {
      if (mkdirError.code !== 'EEXIST') throw mkdirError;
    });
    return action();
  }
}

/** Writes all of a chunk (a write to a regular file may be short). */
export async function writeFully(handle: FileHandle, chunk: Buffer): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

export async function openForWriting(path: string): Promise<FileHandle> {
  return withSubdir(path, () => open(path, 'wx'));
}
