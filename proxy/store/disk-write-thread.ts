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
export const WRITE_THREAD_SOURCE = `
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
// Results go back when the batch is done, or sooner once a mebibyte has been
// written since the last ones went: one message for a batch of small entries
// (a message per job cost the event loop about 20 us per entry), while large
// bodies' bytes are let go as they are written (the sender counts them until
// their results arrive, see MAX_QUEUED_BYTES).
const REPORT_BYTES = 1024 * 1024;
parentPort.on('message', (jobs) => {
  let results = [];
  let written = 0;
  for (let i = 0; i < jobs.length; i++) {
    const job = jobs[i];
    jobs[i] = null;
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
    // The bytes go back with the result: freed here, they would wait for this thread's rare
    // collections, and a fill would hold tens of mebibytes of written copies; the sender's
    // isolate, busy, collects them soon.
    results.push({ seq: job.seq, failure, bytes: job.bytes });
    written += job.bytes.byteLength;
    if (written >= REPORT_BYTES || i === jobs.length - 1) {
      parentPort.postMessage(results, results.map((result) => result.bytes));
      results = [];
      written = 0;
    }
  }
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
  /** The job's bytes, moved back to be collected here (nothing reads them). */
  readonly bytes?: ArrayBuffer;
}

interface Pending {
  readonly size: number;
  resolve(): void;
  reject(error: Error): void;
}

/** Starts a thread that writes jobs (the default runs WRITE_THREAD_SOURCE). */
export type StartWriteThread = () => Worker;

export const startWriteThread: StartWriteThread = () => new Worker(WRITE_THREAD_SOURCE, { eval: true });

/**
 * Bytes of jobs queued for the thread or being written, at most: each job
 * holds a copy of its files until the thread is done with it, and without
 * a bound a burst of large fills (128 concurrent 8 MiB bodies) would hold
 * a gigabyte. A write that would pass it waits for room; one job larger
 * than the bound still goes, alone.
 */
export const MAX_QUEUED_BYTES = 64 * 1024 * 1024;

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
 * The thread holds the process open only while a write is in flight. A
 * thread that cannot start or that is lost fails the writes it would have
 * done, never the process.
 */
export class DiskWriteThread {
  readonly #start: StartWriteThread;
  readonly #maxQueuedBytes: number;
  #worker: Worker | undefined;
  #seq = 0;
  /** Jobs queued or being written, by sequence number. */
  readonly #pending = new Map<number, Pending>();
  /** Jobs waiting for the thread to finish the batch it has. */
  #queue: Job[] = [];
  /** Jobs of the batch the thread has whose results have not come back. */
  #batchLeft = 0;
  /** Bytes of the jobs in #pending, and of writes let in that are building theirs. */
  #queuedBytes = 0;
  /** Writes waiting for room under maxQueuedBytes, first come first served. */
  readonly #waiting: { size: number; enter(): void }[] = [];
  #scheduled = false;
  #closed = false;
  readonly #inFlight = new Set<Promise<void>>();

  /** `start` replaces how the thread is started (tests: a thread that cannot start or dies); `maxQueuedBytes` as MAX_QUEUED_BYTES. */
  constructor(start: StartWriteThread = startWriteThread, maxQueuedBytes = MAX_QUEUED_BYTES) {
    this.#start = start;
    this.#maxQueuedBytes = maxQueuedBytes;
  }

  /** Starts the thread now, so the first write does not wait for it; throws what starting it threw. */
  start(): void {
    if (!this.#closed) this.#started();
  }

  /** Bytes held for jobs queued or being written (diagnostics, tests). */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Writes the files in order, each under its temporary name (kept in
   * `temps` while it may exist, so the boot scan leaves it alone) then
   * renamed into place. Rejects with the failed file's error, the later
   * files unwritten.
   */
  async write(files: readonly WholeFile[], temps: Set<string>): Promise<void> {
    if (this.#closed) throw new Error('disk write thread is closed');
    const size = files.reduce((sum, file) => sum + file.data.length, 0);
    // Awaited only when there is no room: otherwise the job is registered (its temporaries in `temps`) before write() returns.
    const room = this.#room(size);
    if (room !== undefined) await room;
    let worker: Worker;
    try {
      if (this.#closed) throw new Error('disk write thread is closed');
      // Before anything is registered: a thread that cannot start fails this write alone.
      worker = this.#started();
    } catch (error) {
      this.#free(size);
      throw error;
    }
    const seq = ++this.#seq;
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const file of files) {
      bytes.set(file.data, offset);
      offset += file.data.length;
    }
    const job: Job = { seq, files: files.map((file) => ({ temp: tempPathOf(file.path), path: file.path, length: file.data.length })), bytes: bytes.buffer };
    for (const file of job.files) temps.add(file.temp);
    const done = new Promise<void>((resolve, reject) => this.#pending.set(seq, { size, resolve, reject }));
    if (this.#pending.size === 1) worker.ref();
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
    while (this.#inFlight.size > 0 || this.#waiting.length > 0) {
      // Writes waiting for room are let in, to be refused.
      for (const waiter of this.#waiting.splice(0)) {
        this.#queuedBytes += waiter.size;
        waiter.enter();
      }
      await Promise.allSettled([...this.#inFlight]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker !== undefined) await worker.terminate();
  }

  /** Waits until `size` more bytes fit under the bound (or nothing else is held), then counts them. */
  #room(size: number): Promise<void> | undefined {
    if (this.#waiting.length === 0 && (this.#queuedBytes === 0 || this.#queuedBytes + size <= this.#maxQueuedBytes)) {
      this.#queuedBytes += size;
      return undefined;
    }
    return new Promise<void>((enter) => this.#waiting.push({ size, enter }));
  }

  /** Gives back a job's bytes and lets in the waiting writes that now fit. */
  #free(size: number): void {
    this.#queuedBytes -= size;
    while (this.#waiting.length > 0) {
      const next = this.#waiting[0]!;
      if (this.#queuedBytes > 0 && this.#queuedBytes + next.size > this.#maxQueuedBytes) break;
      this.#waiting.shift();
      this.#queuedBytes += next.size;
      next.enter();
    }
  }

  #started(): Worker {
    if (this.#worker !== undefined) return this.#worker;
    const worker = this.#start();
    // Started idle: the process is held open only while a write is in flight.
    worker.unref();
    worker.on('message', (results: readonly Result[]) => {
      if (this.#worker === worker) this.#settle(results);
    });
    // The thread died (out of memory, killed), or a result could not be read (it would never come):
    // whatever it held fails, and the next write starts a new one.
    const lost = (reason: string) => {
      if (this.#worker !== worker) return;
      this.#worker = undefined;
      this.#batchLeft = 0;
      this.#queue = [];
      for (const seq of [...this.#pending.keys()]) this.#finish(seq, new Error(`disk write thread stopped: ${reason}`));
    };
    worker.on('error', (error) => lost(error.message));
    worker.on('exit', (code) => lost(`exit code ${code}`));
    worker.on('messageerror', (error) => {
      lost(`unreadable result (${error.message})`);
      void worker.terminate();
    });
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
    if (this.#batchLeft > 0 || this.#queue.length === 0) return;
    const jobs = this.#queue;
    this.#queue = [];
    try {
      // Not started yet when the one the write saw was lost meanwhile.
      const worker = this.#started();
      worker.postMessage(
        jobs,
        jobs.map((job) => job.bytes),
      );
      this.#batchLeft = jobs.length;
    } catch (error) {
      // A thread that cannot start again (or a message that cannot go): these writes fail, the process goes on.
      for (const job of jobs) this.#finish(job.seq, error instanceof Error ? error : new Error(String(error)));
    }
  }

  #settle(results: readonly Result[]): void {
    for (const { seq, failure } of results) {
      this.#finish(seq, failure === null ? undefined : Object.assign(new Error(failure.message), failure.code === undefined ? {} : { code: failure.code }));
      if (this.#batchLeft > 0) this.#batchLeft--;
    }
    if (this.#batchLeft === 0) this.#send();
  }

  #finish(seq: number, error: Error | undefined): void {
    const pending = this.#pending.get(seq);
    if (pending === undefined) return;
    this.#pending.delete(seq);
    if (this.#pending.size === 0) this.#worker?.unref();
    this.#free(pending.size);
    if (error === undefined) pending.resolve();
    else pending.reject(error);
  }
}
