import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { tempPathOf } from '../../proxy/store/disk-files.js';
import { DiskWriteThread } from '../../proxy/store/disk-write-thread.js';
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
        for (const job of jobs) {
          for (const file of job.files) writeFileSync(file.path, new Uint8Array(job.bytes, 0, file.length));
          parentPort.postMessage({ seq: job.seq, failure: null });
        }
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
});
