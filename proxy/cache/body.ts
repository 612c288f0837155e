import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { crc32 } from 'node:zlib';

/**
 * A stored body: bytes in memory, or a file the disk tier owns. The union is
 * closed and a Buffer stays a plain Buffer, so the memory hit path pays for
 * no wrapper, promise or copy. Both members have `length`.
 */
export type Body = Buffer | FileBody;

export interface FileBody {
  readonly kind: 'file';
  /** Absolute path of a complete body file (written to a temporary name, then renamed). */
  readonly path: string;
  readonly length: number;
  /** CRC-32 of the whole body, checked whenever the whole body is read. */
  readonly crc: number;
  /** The tier that owns the file; told when the file turns out not to match. */
  readonly owner: BodyOwner;
}

export interface BodyOwner {
  corrupt(body: FileBody, reason: string): void;
}

export function isFileBody(body: Body): body is FileBody {
  return !Buffer.isBuffer(body);
}

const READ_CHUNK = 1024 * 1024;

export class CorruptBodyError extends Error {
  constructor(body: FileBody, reason: string) {
    super(`stored body ${body.path} is corrupt: ${reason}`);
    this.name = 'CorruptBodyError';
  }
}

/**
 * Streams bytes [start, end] of a file body. The byte count is checked for
 * any range and the checksum for the whole body; a mismatch ends the stream
 * with an error (so a client sees an aborted transfer, never a short body
 * that looks complete) and the owner drops the entry.
 */
export function streamFileBody(body: FileBody, start = 0, end = body.length - 1): Readable {
  const expected = end - start + 1;
  const whole = start === 0 && expected === body.length;
  let seen = 0;
  let crc = 0;
  const fail = (reason: string): Error => {
    body.owner.corrupt(body, reason);
    return new CorruptBodyError(body, reason);
  };
  const verifier = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      seen += chunk.length;
      if (whole) crc = crc32(chunk, crc);
      callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      if (seen !== expected) return callback(fail(`${seen} of ${expected} bytes`));
      if (whole && crc !== body.crc) return callback(fail('checksum mismatch'));
      callback();
    },
  });
  if (expected <= 0) {
    verifier.end();
    return verifier;
  }
  // Files are never changed once renamed into place, so a short file is the damage to catch.
  // One read for bodies up to a megabyte: fewer round trips to the thread pool per hit.
  const source = createReadStream(body.path, { start, end, highWaterMark: Math.min(Math.max(expected, 16 * 1024), READ_CHUNK) });
  source.on('error', (error: NodeJS.ErrnoException) => verifier.destroy(error.code === 'ENOENT' ? fail('file missing') : error));
  verifier.on('close', () => source.destroy());
  source.pipe(verifier);
  return verifier;
}

/** Reads a whole file body into memory, checking its length and checksum. */
export async function readFileBody(body: FileBody): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(body.path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') body.owner.corrupt(body, 'file missing');
    throw error;
  }
  if (bytes.length !== body.length) {
    body.owner.corrupt(body, `${bytes.length} of ${body.length} bytes`);
    throw new CorruptBodyError(body, 'wrong length');
  }
  if (crc32(bytes) !== body.crc) {
    body.owner.corrupt(body, 'checksum mismatch');
    throw new CorruptBodyError(body, 'checksum mismatch');
  }
  return bytes;
}

/** The whole body as bytes (tests, promotion into memory). */
export function bodyBytes(body: Body): Promise<Buffer> | Buffer {
  return Buffer.isBuffer(body) ? body : readFileBody(body);
}
