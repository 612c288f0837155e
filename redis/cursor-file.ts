import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PURGE_POSITION_FILE } from '../proxy/store/disk-files.js';
import { isStreamId } from './stream-id.js';

/**
 * Where an instance keeps the last purge-stream entry it applied. It lives
 * in the disk tier's directory because it describes that directory's
 * content: entries on disk outlive a restart, and so must the knowledge of
 * which purges they have already seen. (A memory-only instance starts
 * empty and needs no past purges, so it keeps its position in memory.)
 *
 * Written by rename, so a crash leaves the old position or the new one,
 * never half a file. A position that lags only makes a restart apply a few
 * purges twice, which changes nothing.
 */

export interface StreamPosition {
  /** Which life of the stream the id belongs to (see purge-stream.ts). */
  readonly epoch: string;
  readonly id: string;
}

export interface PositionStore {
  load(): StreamPosition | undefined;
  save(position: StreamPosition): void;
}


export function fileCursor(dir: string): PositionStore {
  const file = join(dir, PURGE_POSITION_FILE);
  return {
    load() {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        return undefined;
      }
      try {
        const value = JSON.parse(text) as Partial<StreamPosition>;
        if (typeof value.epoch === 'string' && typeof value.id === 'string' && isStreamId(value.id)) return { epoch: value.epoch, id: value.id };
      } catch {
        // A damaged file reads as no position: the instance then behaves as after a stream reset.
      }
      return { epoch: '', id: '0-0' };
    },
    save(position) {
      mkdirSync(dir, { recursive: true });
      const temp = `${file}.${process.pid}.tmp`;
      writeFileSync(temp, JSON.stringify(position));
      renameSync(temp, file);
    },
  };
}

export function memoryCursor(): PositionStore {
  let position: StreamPosition | undefined;
  return {
    load: () => position,
    save: (next) => {
      position = next;
    },
  };
}
