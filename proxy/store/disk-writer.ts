import type { FileHandle } from 'node:fs/promises';
import { rename, unlink } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { BodyOwner, FileBody } from '../cache/body.js';
import type { BodyWriter } from './store.js';
import { openForWriting, tempPathOf, writeFully } from './disk-files.js';

/** What a body writer needs from the disk tier that made it. */
export interface WriterHost {
  readonly owner: BodyOwner;
  /** Settles when the cache directory may be written. */
  readonly claimed: Promise<void>;
  readonly temps: Set<string>;
  /** Holds the body file against removal until `release`. */
  hold(id: string): void;
  release(id: string): void;
}

/**
 * Streams one body into a temporary file, keeping its length and CRC-32,
 * and renames it into place when complete. Nothing is buffered beyond the
 * chunk being written; the caller awaits each write, which is backpressure.
 */
export class DiskBodyWriter implements BodyWriter {
  readonly #host: WriterHost;
  readonly #id: string;
  readonly #path: string;
  readonly #temp: string;
  readonly #limit: number;
  #handle: Promise<FileHandle> | undefined;
  #length = 0;
  #crc = 0;
  #failure: unknown;
  #state: 'writing' | 'finished' | 'released' = 'writing';

  constructor(host: WriterHost, id: string, path: string, limit: number) {
    this.#host = host;
    this.#id = id;
    this.#path = path;
    this.#temp = tempPathOf(path);
    this.#limit = limit;
    host.temps.add(this.#temp);
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.#failure !== undefined || this.#state !== 'writing') return;
    if (this.#length + chunk.length > this.#limit) {
      this.#failure = new Error(`body larger than cache.disk.maxObjectSize (${this.#limit} bytes)`);
      return this.#discardTemp();
    }
    this.#length += chunk.length;
    this.#crc = crc32(chunk, this.#crc);
    try {
      this.#handle ??= this.#host.claimed.then(() => openForWriting(this.#temp));
      await writeFully(await this.#handle, chunk);
    } catch (error) {
      this.#failure = error;
      await this.#discardTemp();
    }
  }

  async finish(): Promise<FileBody> {
    if (this.#state !== 'writing') throw new Error('body writer already finished');
    if (this.#failure !== undefined) throw this.#failure;
    try {
      this.#handle ??= this.#host.claimed.then(() => openForWriting(this.#temp));
      await (await this.#handle).close();
      await rename(this.#temp, this.#path);
    } catch (error) {
      this.#failure = error;
      await this.#discardTemp();
      throw error;
    }
    this.#host.temps.delete(this.#temp);
    if (this.#wasReleased()) {
      // Released while closing or renaming (its reader left during the last chunk): nobody will hold this file.
      await unlink(this.#path).catch(() => undefined);
      throw this.#failure ?? new Error('released before finishing');
    }
    this.#host.hold(this.#id);
    this.#state = 'finished';
    return { kind: 'file', path: this.#path, length: this.#length, crc: this.#crc, owner: this.#host.owner };
  }

  release(): void {
    const state = this.#state;
    this.#state = 'released';
    if (state === 'finished') this.#host.release(this.#id);
    else if (state === 'writing') {
      this.#failure ??= new Error('released before finishing');
      void this.#discardTemp();
    }
  }

  #wasReleased(): boolean {
    return this.#state === 'released';
  }

  async #discardTemp(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle !== undefined) await handle.then((h) => h.close()).catch(() => undefined);
    await unlink(this.#temp).catch(() => undefined);
    this.#host.temps.delete(this.#temp);
  }
}
