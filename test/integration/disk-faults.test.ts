import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startLacquerProcess, type LacquerProcess, type ProcessOptions } from '../helpers/child.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { scrape, seriesKey } from '../helpers/prometheus.js';
import { tempDir } from '../helpers/tempdir.js';
import { bodyFor, sendInPieces } from '../helpers/bodies.js';

/**
 * The cache directory failing under a running `lacquer` process: made
 * read-only, filled up, or the process stopped (SIGTERM) or killed (SIGKILL)
 * under load and restarted on the same directory. Every answer is the
 * origin's body or an error, never a wrong or truncated body; failed writes
 * are counted in lacquer_store_errors_total; the process stays up.
 */

const KiB = 1024;
const NOBODY = 65534;
const root = tempDir('lacquer-disk-faults-');
// The read-only test runs lacquer as an unprivileged user, who must be able to reach its directories.
chownSync(root, NOBODY, NOBODY);
let dirs = 0;
const running: LacquerProcess[] = [];
const origins: TestOrigin[] = [];
const cleanups: (() => void)[] = [];

afterEach(async () => {
  const stopped = running.splice(0);
  for (const lacquer of stopped) await lacquer.stop('SIGKILL');
  // The CLI logs an unhandled rejection and keeps serving; here it is a failure.
  for (const lacquer of stopped) expect(lacquer.output()).not.toContain('unhandled rejection');
  for (const origin of origins.splice(0)) await origin.close();
  for (const cleanup of cleanups.splice(0)) cleanup();
});


/** An origin serving bodyFor(path, sizeOf(path)), cacheable for 10 minutes, written in pieces. */
async function origin(sizeOf: (path: string) => number): Promise<TestOrigin> {
  const started = await startOrigin((request, response) => {
    const body = bodyFor(request.url, sizeOf(request.url));
    response.writeHead(200, { 'cache-control': 'max-age=600' });
    sendInPieces(response, body);
  });
  origins.push(started);
  return started;
}

async function get(url: string) {
  const response = await undiciRequest(url, { headers: { host: 'cache.test' } });
  const body = Buffer.from(await response.body.arrayBuffer());
  return { status: response.statusCode, cacheStatus: String(response.headers['cache-status']), body };
}

async function start(dir: string, originUrl: string, yaml: string, options: ProcessOptions = {}): Promise<LacquerProcess> {
  const file = join(root, `config-${dirs++}.yaml`);
  writeFileSync(file, yaml);
  const lacquer = await startLacquerProcess(['--cache-dir', dir, '--origin', originUrl, '--config', file], { LACQUER_LOG_LEVEL: '' }, root, options);
  running.push(lacquer);
  await lacquer.waitFor('disk cache index rebuilt', 15_000);
  return lacquer;
}

/** `lacquer; hit` (RFC 9211), not `detail=hit-for-miss`. */
function isHit(cacheStatus: string): boolean {
  return /; hit(;|$)/.test(cacheStatus);
}

async function writeErrors(adminUrl: string): Promise<number> {
  return (await scrape(adminUrl)).get(seriesKey('lacquer_store_errors_total', { operation: 'write' })) ?? 0;
}

/** Every directory under `dir`, `dir` first. */
function directories(dir: string): string[] {
  return [dir, ...readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).flatMap((e) => directories(join(dir, e.name)))];
}

/**
 * How to make a directory read-only under a running process. Preferred: a
 * read-only bind mount over it (writes fail with EROFS, as on a read-only
 * volume), where this machine lets root mount. Otherwise the process runs as
 * an unprivileged user and the directories lose their write bits (as root,
 * modes do not stop writes); that needs the node binary and the project
 * readable by that user.
 */
type ReadOnlyWay = { kind: 'bind-mount' } | { kind: 'unprivileged' };

function readOnlyWay(): ReadOnlyWay {
  const probe = tempDir('lacquer-ro-probe-');
  const mounted = spawnSync('mount', ['--bind', probe, probe]).status === 0;
  if (mounted) {
    const readOnly = spawnSync('mount', ['-o', 'remount,bind,ro', probe]).status === 0;
    spawnSync('umount', ['-l', probe]);
    if (readOnly) return { kind: 'bind-mount' };
  }
  return { kind: 'unprivileged' };
}

/** Makes `dir` read-only for the running process; answers how to undo it. */
function makeReadOnly(way: ReadOnlyWay, dir: string): () => void {
  if (way.kind === 'bind-mount') {
    for (const args of [['--bind', dir, dir], ['-o', 'remount,bind,ro', dir]]) {
      const result = spawnSync('mount', args, { encoding: 'utf8' });
      if (result.status !== 0) throw new Error(`mount ${args.join(' ')} failed: ${result.stderr}`);
    }
    return () => void spawnSync('umount', ['-l', dir]);
  }
  const writable = directories(dir);
  for (const each of writable) chmodSync(each, 0o555);
  return () => writable.forEach((each) => chmodSync(each, 0o755));
}

/** Memory holds bodies up to 32 KiB; larger ones live on disk only, written while they stream. */
const SMALL_MEMORY = 'log:\n  level: info\ncache:\n  memory:\n    maxObjectSize: 32KiB\n';

describe('the cache directory at run time', () => {
  it('made read-only: serves every body from the origin, counts the failed writes, keeps serving what it holds, and stores again once writable', async () => {
    const sizeOf = (path: string) => (path.startsWith('/big') ? 200 * KiB : 8 * KiB);
    const o = await origin(sizeOf);
    const dir = join(root, `read-only-${dirs++}`);
    const way = readOnlyWay();
    const lacquer = await start(dir, o.url, SMALL_MEMORY, way.kind === 'unprivileged' ? { uid: NOBODY, gid: NOBODY } : {});
    // The disk write finishes after the answer; the entry becomes a hit once it has.
    for (const path of ['/a', '/big-a']) await expect.poll(async () => (await get(lacquer.url + path)).cacheStatus, { timeout: 10_000 }).toMatch(/; hit(;|$)/);
    const errorsBefore = await writeErrors(lacquer.adminUrl);

    let undo: (() => void) | undefined = makeReadOnly(way, dir);
    cleanups.push(() => undo?.());
    for (const path of ['/c', '/c', '/big-c', '/big-c']) {
      const answer = await get(lacquer.url + path);
      expect(answer.status).toBe(200);
      expect(answer.body.equals(bodyFor(path, sizeOf(path)))).toBe(true);
      expect(isHit(answer.cacheStatus)).toBe(false);
    }
    expect(o.hits('/c')).toBe(2);
    expect(o.hits('/big-c')).toBe(2);
    expect(await writeErrors(lacquer.adminUrl)).toBeGreaterThanOrEqual(errorsBefore + 2);
    for (const path of ['/a', '/big-a']) {
      const kept = await get(lacquer.url + path);
      expect(isHit(kept.cacheStatus)).toBe(true);
      expect(kept.body.equals(bodyFor(path, sizeOf(path)))).toBe(true);
    }

    undo();
    undo = undefined;
    await expect.poll(async () => (await get(`${lacquer.url}/d`)).cacheStatus, { timeout: 10_000 }).toMatch(/; hit(;|$)/);
    const stored = await get(`${lacquer.url}/d`);
    expect(stored.body.equals(bodyFor('/d', sizeOf('/d')))).toBe(true);
    expect(lacquer.child.exitCode).toBeNull();
  });

  it('filled up: answers every request with the origin’s exact body, counts the failed writes, and serves only whole entries', async () => {
    const sizeOf = (path: string) => (path.startsWith('/big') ? 300 * KiB : 10 * KiB);
    const o = await origin(sizeOf);
    const dir = join(root, `full-${dirs++}`);
    mkdirSync(dir);
    const limit = smallDisk(dir);
    const lacquer = await start(dir, o.url, SMALL_MEMORY, limit.options);

    const paths = Array.from({ length: 20 }, (_, i) => [`/small-${i}`, `/big-${i}`]).flat();
    for (const path of [...paths, ...paths]) {
      const answer = await get(lacquer.url + path);
      expect(answer.status, path).toBe(200);
      expect(answer.body.equals(bodyFor(path, sizeOf(path))), path).toBe(true);
    }
    expect(await writeErrors(lacquer.adminUrl)).toBeGreaterThan(0);
    // Whatever was stored before the disk filled is served whole, from the cache.
    let hits = 0;
    for (const path of paths) {
      const answer = await get(lacquer.url + path);
      expect(answer.body.equals(bodyFor(path, sizeOf(path))), path).toBe(true);
      if (isHit(answer.cacheStatus)) hits++;
    }
    expect(hits).toBeGreaterThan(0);
    expect(hits).toBeLessThan(paths.length);
    expect(lacquer.child.exitCode).toBeNull();
    expect(lacquer.output()).not.toContain('unhandled rejection');
    process.stdout.write(`disk full by ${limit.how}: ${hits} of ${paths.length} paths cached, ${await writeErrors(lacquer.adminUrl)} failed writes counted\n`);
  });
});

/**
 * A disk that fills up: a 1 MiB tmpfs mounted on `dir` where this process
 * may mount (root with CAP_SYS_ADMIN); otherwise the kernel's file size
 * limit (RLIMIT_FSIZE, 256 KiB), under which a write past the limit fails
 * the same way in the middle of a file (EFBIG instead of ENOSPC).
 */
function smallDisk(dir: string): { how: string; options: ProcessOptions } {
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', dir], { encoding: 'utf8' });
  if (mounted.status === 0 && statSync(dir).dev !== statSync(root).dev) {
    cleanups.push(() => void spawnSync('umount', ['-l', dir]));
    return { how: 'a 1 MiB tmpfs', options: {} };
  }
  return { how: 'a 256 KiB file size limit', options: { wrapper: ['prlimit', `--fsize=${256 * KiB}`] } };
}

describe('a restart under load', () => {
  it('never answers a wrong body while the process is stopped with SIGTERM, killed with SIGKILL, and restarted on the same directory', async () => {
    const sizeOf = (path: string) => ((Number(path.slice(3)) * 7919) % (96 * KiB)) + 1;
    const o = await origin(sizeOf);
    const dir = join(root, `restart-${dirs++}`);
    let lacquer = await start(dir, o.url, SMALL_MEMORY);
    const outcomes = new Map<string, number>();
    const wrong: string[] = [];
    let done = 0;
    let stop = false;
    const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
    const worker = async (id: number) => {
      for (let i = id; !stop && i < 100_000; i += 8) {
        const path = `/o/${i % 150}`;
        try {
          const answer = await get(lacquer.url + path);
          count(String(answer.status));
          if (answer.status === 200 && !answer.body.equals(bodyFor(path, sizeOf(path)))) wrong.push(`${path} (${answer.cacheStatus})`);
          if (answer.status !== 200 && answer.status !== 503) wrong.push(`${path}: status ${answer.status}`);
          done++;
        } catch {
          // Refused or cut while the process is down: an error, never a body.
          count('connection error');
          await new Promise((r) => setTimeout(r, 10));
        }
      }
    };
    const until = async (target: number) => {
      const deadline = Date.now() + 30_000;
      while (done < target && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    };
    const workers = Array.from({ length: 8 }, (_, id) => worker(id));
    try {
      await until(400);
      expect(await lacquer.stop('SIGTERM')).toBe(0);
      lacquer = await start(dir, o.url, SMALL_MEMORY);
      await until(done + 400);
      lacquer.child.kill('SIGKILL');
      await lacquer.stop('SIGKILL');
      lacquer = await start(dir, o.url, SMALL_MEMORY);
      await until(done + 400);
    } finally {
      stop = true;
      await Promise.all(workers);
    }
    expect(wrong).toEqual([]);
    expect(done).toBeGreaterThanOrEqual(1_200);
    // After the restarts the cache still answers: the origin saw far fewer requests than the clients sent.
    expect(o.hits()).toBeLessThan(done);
    const after = await get(`${lacquer.url}/o/1`);
    expect(after.body.equals(bodyFor('/o/1', sizeOf('/o/1')))).toBe(true);
    process.stdout.write(`restart under load: ${JSON.stringify(Object.fromEntries(outcomes))}, origin hits ${o.hits()}\n`);
  }, 120_000);
});
