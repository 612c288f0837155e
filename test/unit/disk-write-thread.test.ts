import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { tempPathOf } from '../../proxy/store/disk-files.js';
import { DiskWriteThread, WRITE_THREAD_SOURCE } from '../../proxy/store/disk-write-thread.js';
import { holdResultsUntil } from '../helpers/held-write-thread.js';
import { tempDir } from '../helpers/tempdir.js';

const root = tempDir('lacquer-write-thread-');
let dirs = 0;
const threads: DiskWriteThread[] = [];

function fresh(): { dir: string; thread: DiskWriteThread } {
  const dir = join(root, String(dirs++));
  mkdirSync(dir);
  const thread = new DiskWriteThread();
  threads.push(thread);
  return { dir, thread };
}

afterEach(async () => {
  await Promise.all(threads.splice(0).map((thread) => thread.close()));
});

describe('the disk write thread', () => {
  it('writes each file whole under its final name, creating a missing subdirectory, and leaves no temporary file', async () => {
    const { dir, thread } = fresh();
    const body = Buffer.alloc(10_000, 7);
    const meta = Buffer.from('metadata');
    const temps = new Set<string>();
    await thread.write([{ path: join(dir, 'ab', 'x.body'), data: body }, { path: join(dir, 'ab', 'x.meta'), data: meta }], temps);
    expect(readFileSync(join(dir, 'ab', 'x.body')).equals(body)).toBe(true);
    expect(readFileSync(join(dir, 'ab', 'x.meta')).equals(meta)).toBe(true);
    expect(readdirSync(join(dir, 'ab')).sort()).toEqual(['x.body', 'x.meta']);
    expect(temps.size).toBe(0);
  });

  it('writes exactly the bytes of a view into a larger buffer (a body held in a memory-tier slab), for every file of a job', async () => {
    const { dir, thread } = fresh();
    const slab = Buffer.alloc(64 * 1024);
    for (let i = 0; i < slab.length; i++) slab[i] = i % 251;
    const body = slab.subarray(1000, 11_000);
    const meta = slab.subarray(30_000, 30_700);
    await thread.write([{ path: join(dir, 'ab', 'y.body'), data: body }, { path: join(dir, 'ab', 'y.meta'), data: meta }], new Set());
    expect(readFileSync(join(dir, 'ab', 'y.body')).equals(body)).toBe(true);
    expect(readFileSync(join(dir, 'ab', 'y.meta')).equals(meta)).toBe(true);
  });

  it('keeps the temporary names in the given set while the job is in flight, so a boot scan leaves them alone', async () => {
    const { dir, thread } = fresh();
    const temps = new Set<string>();
    const paths = [join(dir, 'cd', 'z.body'), join(dir, 'cd', 'z.meta')];
    const done = thread.write(
      paths.map((path) => ({ path, data: Buffer.from(path) })),
      temps,
    );
    expect([...temps].sort()).toEqual(paths.map(tempPathOf).sort());
    await done;
    expect(temps.size).toBe(0);
  });

  it('stops a job at the first file that fails: the later files are not written and no temporary file is left', async () => {
    const { dir, thread } = fresh();
    // A directory where the first file is to go: its rename fails.
    mkdirSync(join(dir, 'ef', 'taken.body'), { recursive: true });
    const temps = new Set<string>();
    const failed = thread.write([{ path: join(dir, 'ef', 'taken.body'), data: Buffer.from('body') }, { path: join(dir, 'ef', 'taken.meta'), data: Buffer.from('meta') }], temps);
    await expect(failed).rejects.toMatchObject({ code: expect.stringMatching(/^E/) });
    expect(readdirSync(join(dir, 'ef'))).toEqual(['taken.body']);
    expect(existsSync(join(dir, 'ef', 'taken.meta'))).toBe(false);
    expect(temps.size).toBe(0);
    // The thread goes on with the next job.
    await thread.write([{ path: join(dir, 'ef', 'next.meta'), data: Buffer.from('next') }], temps);
    expect(readFileSync(join(dir, 'ef', 'next.meta'), 'utf8')).toBe('next');
  });

  it('never creates the cache directory itself: a write into a removed directory fails with ENOENT', async () => {
    const { dir, thread } = fresh();
    const gone = join(dir, 'gone');
    await expect(thread.write([{ path: join(gone, 'ab', 'x.body'), data: Buffer.from('x') }], new Set())).rejects.toMatchObject({ code: 'ENOENT' });
    expect(existsSync(gone)).toBe(false);
  });

  it('answers each of many jobs queued at once with its own result', async () => {
    const { dir, thread } = fresh();
    mkdirSync(join(dir, '00', 'bad-3'), { recursive: true });
    const results = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => thread.write([{ path: join(dir, '00', `${i === 3 ? 'bad-3' : `ok-${i}`}`), data: Buffer.from(String(i)) }], new Set())));
    expect(results.map((result) => result.status)).toEqual(Array.from({ length: 50 }, (_, i) => (i === 3 ? 'rejected' : 'fulfilled')));
    for (let i = 0; i < 50; i++) if (i !== 3) expect(readFileSync(join(dir, '00', `ok-${i}`), 'utf8')).toBe(String(i));
  });

  it('fails the writes a thread that dies was holding, and starts a new thread for the next write', async () => {
    const dir = join(root, String(dirs++));
    mkdirSync(dir);
    // A thread that dies on its first job, then (started anew) writes what it is given.
    const marker = join(dir, 'died-once');
    const source = `
      const { parentPort } = require('node:worker_threads');
      const { existsSync, writeFileSync } = require('node:fs');
      parentPort.on('message', (jobs) => {
        if (!existsSync(${JSON.stringify(marker)})) { writeFileSync(${JSON.stringify(marker)}, ''); process.exit(3); }
        for (const job of jobs) for (const file of job.files) writeFileSync(file.path, new Uint8Array(job.bytes, 0, file.length));
        parentPort.postMessage(jobs.map((job) => ({ seq: job.seq, failure: null })));
      });`;
    const thread = new DiskWriteThread(() => new Worker(source, { eval: true }));
    threads.push(thread);
    const temps = new Set<string>();
    await expect(thread.write([{ path: join(dir, 'lost'), data: Buffer.from('lost') }], temps)).rejects.toThrow(/disk write thread stopped/);
    expect(temps.size).toBe(0);
    await thread.write([{ path: join(dir, 'kept'), data: Buffer.from('kept') }], temps);
    expect(readFileSync(join(dir, 'kept'), 'utf8')).toBe('kept');
  });

  it('finishes the writes in flight when closed, then refuses new ones', async () => {
    const { dir, thread } = fresh();
    const pending = thread.write([{ path: join(dir, 'ab', 'late.body'), data: Buffer.from('late') }], new Set());
    await thread.close();
    await pending;
    expect(readFileSync(join(dir, 'ab', 'late.body'), 'utf8')).toBe('late');
    await expect(thread.write([{ path: join(dir, 'ab', 'after.body'), data: Buffer.from('x') }], new Set())).rejects.toThrow(/closed/);
  });

  it('fails a write, and registers nothing, when the thread cannot start (a process not allowed to start threads)', async () => {
    const dir = join(root, String(dirs++));
    mkdirSync(dir);
    let tries = 0;
    const thread = new DiskWriteThread(() => {
      tries++;
      throw Object.assign(new Error('Access to this API has been restricted'), { code: 'ERR_ACCESS_DENIED' });
    });
    threads.push(thread);
    const temps = new Set<string>();
    await expect(thread.write([{ path: join(dir, 'x.body'), data: Buffer.from('x') }], temps)).rejects.toMatchObject({ code: 'ERR_ACCESS_DENIED' });
    await expect(thread.write([{ path: join(dir, 'y.body'), data: Buffer.from('y') }], temps)).rejects.toMatchObject({ code: 'ERR_ACCESS_DENIED' });
    expect(() => thread.start()).toThrow(/restricted/);
    expect(tries).toBe(3);
    expect(temps.size).toBe(0);
    expect(thread.queuedBytes).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('fails the writes in flight when a result cannot be read (it would never come), and goes on with a new thread', async () => {
    const dir = join(root, String(dirs++));
    mkdirSync(dir);
    const received = join(dir, 'received');
    // A thread that takes a job and never answers: as if its answer had been lost.
    const silent = new Worker(
      `const { parentPort } = require('node:worker_threads');
       parentPort.on('message', () => require('node:fs').writeFileSync(${JSON.stringify(received)}, ''));`,
      { eval: true },
    );
    let started = 0;
    const thread = new DiskWriteThread(() => (started++ === 0 ? silent : new Worker(WRITE_THREAD_SOURCE, { eval: true })));
    threads.push(thread);
    const lost = thread.write([{ path: join(dir, 'lost'), data: Buffer.from('lost') }], new Set());
    await until(() => existsSync(received));
    // What Node emits on the Worker when a message from the thread fails to deserialize.
    silent.emit('messageerror', new Error('could not deserialize the message'));
    await expect(lost).rejects.toThrow(/disk write thread stopped: unreadable result/);
    await thread.write([{ path: join(dir, 'kept'), data: Buffer.from('kept') }], new Set());
    expect(readFileSync(join(dir, 'kept'), 'utf8')).toBe('kept');
    expect(started).toBe(2);
  });

  it('holds at most its bound of bytes for queued jobs: later writes wait for room, then all are written', async () => {
    const dir = join(root, String(dirs++));
    mkdirSync(dir);
    const gate = join(dir, 'gate');
    // The real thread, its results held back until the gate file exists.
    const held = holdResultsUntil(gate);
    const thread = new DiskWriteThread(() => new Worker(held + WRITE_THREAD_SOURCE, { eval: true }), 100_000);
    threads.push(thread);
    const temps = new Set<string>();
    const writes = Array.from({ length: 10 }, (_, i) => thread.write([{ path: join(dir, `f${i}`), data: Buffer.alloc(40_000, i) }], temps));
    try {
      // Two jobs of 40,000 bytes fit under 100,000; the third waits for one of them.
      expect(thread.queuedBytes).toBe(80_000);
      expect(temps.size).toBe(2);
      await until(() => existsSync(join(dir, 'f1')));
      expect(thread.queuedBytes).toBe(80_000);
      expect(existsSync(join(dir, 'f2'))).toBe(false);
    } finally {
      // Also when an expectation failed: the thread is then closed without waiting for the held results forever.
      writeFileSync(gate, '');
    }
    await Promise.all(writes);
    for (let i = 0; i < 10; i++) expect(readFileSync(join(dir, `f${i}`)).equals(Buffer.alloc(40_000, i))).toBe(true);
    expect(thread.queuedBytes).toBe(0);
    // One job larger than the bound still goes, alone.
    await thread.write([{ path: join(dir, 'big'), data: Buffer.alloc(150_000, 1) }], temps);
    expect(readFileSync(join(dir, 'big')).length).toBe(150_000);
  });
});

/** Waits for a condition, polling; generous bound so a loaded machine does not fail it. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within 20 s');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
