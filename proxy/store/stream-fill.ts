import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import type { FileBody } from '../cache/body.js';
import type { BodyWriter } from './store.js';

export interface StreamFillHooks {
  /** The body is complete on disk: store the entry that refers to it. Awaited before the client's stream ends. */
  stored(body: FileBody): Promise<void>;
  /** The disk write failed or the body grew too large; the client's stream goes on. */
  failed(error: unknown): void;
}

/**
 * Passes an origin body to the client while writing it to a disk body file,
 * chunk by chunk: each chunk is written before it is passed on, so a slow
 * client or a slow disk holds the origin back instead of filling memory.
 * If the origin fails or the client leaves before the end, the partial file
 * is discarded and nothing is stored.
 */
export function streamToDisk(source: Readable, writer: BodyWriter, hooks: StreamFillHooks): Readable {
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    writer.release();
  };
  // Each chunk is passed on when the next one arrives, and the last only once the entry is stored: a client
  // that has every byte can count on the next request being a hit. One chunk is held at a time.
  let held: Buffer | undefined;
  const tee = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      writer.write(chunk).then(
        () => {
          const previous = held;
          held = chunk;
          callback(null, previous);
        },
        (error: unknown) => callback(error as Error),
      );
    },
    flush(callback: TransformCallback) {
      writer
        .finish()
        .then(hooks.stored, hooks.failed)
        .catch(hooks.failed)
        .finally(() => {
          release();
          callback(null, held);
        });
    },
  });
  tee.on('close', release);
  // pipeline destroys both sides on an origin error, so the client sees an aborted transfer, not a short body.
  pipeline(source, tee, () => undefined);
  return tee;
}
