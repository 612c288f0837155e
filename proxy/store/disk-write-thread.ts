import { Worker } from 'node:worker_threads';
import { tempPathOf } from './disk-files.js';

/** A file to write whole: put under its temporary name, then renamed into place. */
export interface WholeFile {
  readonly path: string;
  readonly data: Buffer;
}

/**
 * The thread's code, plain JavaScript run with `eval` (so the same source
 * serves the built files and the tests, which run the TypeScript). For each
 * job it writes the files in the order given, each under its temporary
 * name then renamed into place, and stops at the first failure (removing
 * that file's temporary): a later file never lands without the earlier
 * ones, which is what lets the disk tier put a body before the metadata
 * that names it. Creates a missing subdirectory, never the cache directory
 * itself (disk-files.ts withSubdir). No fsync, as for every disk tier file:
 * a process crash cannot lose written data; a power cut can, and the checks
 * on read (lengths, CRC-32) then catch the damage.
 */
const THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { writeFileSync, renameSync, unlinkSync, mkdirSync } = require('node:fs');
const { dirname } = require('node:path');
function writeNew(temp, data) {
  try {
    writeFileSync(temp, data, { flag: 'wx' });
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
    try { mkdirSync(dirname(temp)); } catch (mkdirError) { if (mkdirError.code !== 'EEXIST') throw mkdirError; }
    writeFileSync(temp, data, { flag: 'wx' });
  }
}
parentPort.on('message', (jobs) => {
  const results = [];
  for (const job of jobs) {
    let failure = null;
    let offset = 0;
    for (const file of job.files) {
      const data = new Uint8Array(job.bytes, offset, file.length);
      offset += file.length;
      try {
        writeNew(file.temp, data);
        renameSync(file.temp, file.path);
      } catch (error) {
        try { unlinkSync(file.temp); } catch {}
        failure = { message: String(error && error.message), code: error && error.code };
        break;
      }
    }
    results.push({ seq: job.seq, failure });
  }
  parentPort.postMessage(results);
});
`;

/**
 * One entry's files as the thread gets them: their bytes one after the
 * other in one ArrayBuffer of their own, moved to the thread, not copied.
 * (Posting the Buffers themselves would copy each one's whole backing
 * store: for a body in a memory-tier slab, the slab.)
 */
interface Job {
  readonly seq: number;
  readonly files: readonly { temp: string; path: string; length: number }[];
  readonly bytes: ArrayBuffer;
}

interface Result {
  readonly seq: number;
  readonly failure: { message: string; code?: string } | null;
}

interface Pending {
  resolve(): void;
  reject(error: Error): void;
}

/**
 * Writes whole files for the disk tier on a thread of its own, with
 * synchronous calls there. A file written through the libuv pool costs four
 * round trips (open, write, close, rename), each a hand-off between threads;
 * on a busy two-core box those hand-offs, not the writes, were most of the
 * disk tier's cost per stored entry (scripts/bench-fill.ts). Here a whole
 * entry is one job, and jobs that queue while the thread is busy go over in
 * one message: under load, one hand-off serves many entries. The event loop
 * never waits on the disk.
 *
 * Files are written in the order given, each whole before it is renamed
 * into place: a crash at any point leaves at most temporary files and files
 * no later one refers to, as with the pool (disk-scan.ts cleans both up).
 * The thread starts on the first write and holds the process open only
 * while a write is in flight.
 */
export class DiskWriteThread {
  readonly #source: string;
  #worker: Worker | undefined;
  #seq = 0;
  readonly #pending = new Map<number, Pending>();
  /** Jobs waiting for the thread to finish the batch it has. */
  #queue: Job[] = [];
  #busy = false;
  #scheduled = false;
  #closed = false;
  readonly #inFlight = new Set<Promise<void>>();

  /** `source` replaces the thread's code: only for testing what happens when the thread dies. */
  constructor(source: string = THREAD_SOURCE) {
    this.#source = source;
  }

  /**
   * Writes the files in order, each under its temporary name (kept in
   * `temps` while it may exist, so the boot scan leaves it alone) then
   * renamed into place. Rejects with the failed file's error, the later
   * files unwritten.
   */
  write(files: readonly WholeFile[], temps: Set<string>): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('disk write thread is closed'));
    const seq = ++this.#seq;
    const bytes = new Uint8Array(files.reduce((sum, file) => sum + file.data.length, 0));
    let offset = 0;
    for (const file of files) {
      bytes.set(file.data, offset);
      offset += file.data.length;
    }
    const job: Job = { seq, files: files.map((file) => ({ temp: tempPathOf(file.path), path: file.path, length: file.data.length })), bytes: bytes.buffer };
    for (const file of job.files) temps.add(file.temp);
    const done = new Promise<void>((resolve, reject) => this.#pending.set(seq, { resolve, reject }));
    if (this.#pending.size === 1) this.#started().ref();
    this.#queue.push(job);
    this.#sendSoon();
    const settled = done.finally(() => {
      for (const file of job.files) temps.delete(file.temp);
      this.#inFlight.delete(settled);
    });
    this.#inFlight.add(settled);
    return settled;
  }

  /** Stops the thread once the writes in flight are done; later writes are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }

  #started(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = new Worker(this.#source, { eval: true });
    worker.on('message', (results: Result[]) => this.#settle(results));
    // The thread died (out of memory, killed): whatever it held fails, and the next write starts a new one.
    const lost = (reason: string) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#busy = false;
      this.#queue = [];
      const pending = [...this.#pending.values()];
      this.#pending.clear();
      for (const { reject } of pending) reject(new Error(`disk write thread stopped: ${reason}`));
    };
    worker.on('error', (error) => lost(error.message));
    worker.on('exit', (code) => lost(`exit code ${code}`));
    this.#worker = worker;
    return worker;
  }

  /**
   * Sends after the rest of this turn of the event loop: under load one turn
   * stores many entries (a poll phase reads many responses), and they then
   * go as one message, one wake-up of the thread.
   */
  #sendSoon(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#send();
    });
  }

  #send(): void {
    if (this.#busy || this.#queue.length === 0) return;
    const worker = this.#started();
    this.#busy = true;
    const jobs = this.#queue;
    this.#queue = [];
    worker.postMessage(
      jobs,
      jobs.map((job) => job.bytes),
    );
  }

  #settle(results: readonly Result[]): void {
    this.#busy = false;
    for (const { seq, failure } of results) {
      const pending = this.#pending.get(seq);
      if (pending === undefined) continue;
      this.#pending.delete(seq);
      if (failure === null) pending.resolve();
      else pending.reject(Object.assign(new Error(failure.message), failure.code === undefined ? {} : { code: failure.code }));
    }
    if (this.#pending.size === 0) this.#worker?.unref();
    this.#send();
  }
}
