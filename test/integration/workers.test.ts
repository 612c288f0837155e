import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { CLAIM_RETRY_ENV } from '../../proxy/store/disk-lock.js';
import { claimDirectory, unlockDirectory } from '../../proxy/store/disk-scan.js';
import { startLacquerProcess, type LacquerProcess } from '../helpers/child.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { scrape } from '../helpers/prometheus.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * `workers: 2` run as users run it: the CLI as a child process, a primary
 * and two workers sharing one port. Which worker takes a connection is the
 * kernel's and the primary's choice, so each request opens a connection of
 * its own and the workers name themselves in a diagnostics header; a test
 * repeats requests (a bounded number) until every worker has answered.
 */

const WORKERS = 2;
const root = tempDir('lacquer-workers-');
let files = 0;
const running: LacquerProcess[] = [];
const origins: TestOrigin[] = [];
afterEach(async () => {
  for (const lacquer of running.splice(0)) await lacquer.stop('SIGKILL');
  for (const origin of origins.splice(0)) await origin.close();
});

interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The worker's slot (1..N) and pid, from x-lacquer-worker. */
  readonly worker: number;
  readonly pid: number;
}

/** One request on a connection of its own (so the primary hands each to the next worker), bounded in time. */
function ask(base: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number; agent?: Agent } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const connection = options.agent === undefined ? { agent: false as const, headers: { connection: 'close' } } : { agent: options.agent, headers: {} };
    const request = httpRequest(url, { method: options.method ?? 'GET', agent: connection.agent, headers: { host: 'cache.test', ...connection.headers, ...options.headers } }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('error', reject);
      response.on('end', () => {
        const [slot, pid] = /^(\d+); pid=(\d+)$/.exec(String(response.headers['x-lacquer-worker'] ?? ''))?.slice(1) ?? [];
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body, worker: Number(slot), pid: Number(pid) });
      });
    });
    request.setTimeout(options.timeoutMs ?? 20_000, () => request.destroy(new Error('no answer in time: a hang')));
    request.on('error', reject);
    request.end(options.body);
  });
}

async function startWorkers(originUrl: string, yaml: string, cacheDir?: string, env: Record<string, string> = {}): Promise<LacquerProcess> {
  const file = join(root, `config-${files++}.yaml`);
  writeFileSync(file, yaml);
  const args = ['--workers', String(WORKERS), '--origin', originUrl, '--config', file];
  if (cacheDir !== undefined) args.push('--cache-dir', cacheDir);
  const lacquer = await startLacquerProcess(args, { LACQUER_WORKER_HEADER: '1', ...env });
  running.push(lacquer);
  return lacquer;
}

/** Waits until the output holds `text` at least `count` times. */
async function untilLogged(lacquer: LacquerProcess, text: string, count: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (lacquer.output().split(text).length - 1 < count) {
    if (Date.now() > deadline) throw new Error(`"${text}" not logged ${count} times within 30 s:\n${lacquer.output()}`);
    await new Promise((done) => setTimeout(done, 20));
  }
}

/** Waits until `lacquer_disk_tier_in_use` (summed over the workers) reads `count`. */
async function untilInUse(lacquer: LacquerProcess, count: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const seen = (await scrape(adminUrl(lacquer))).get('lacquer_disk_tier_in_use');
    if (seen === count) return;
    if (Date.now() > deadline) throw new Error(`lacquer_disk_tier_in_use still ${seen}, not ${count}, after 30 s:\n${lacquer.output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function adminUrl(lacquer: LacquerProcess): string {
  return /admin: +(http:\/\/\S+)/.exec(lacquer.output())![1]!;
}

/** Repeats `path` until every worker has given an answer that passes `done`; answers the last such answer of each. */
async function untilEveryWorker(base: string, path: string, headers: Record<string, string>, done: (answer: Answer) => boolean): Promise<Map<number, Answer>> {
  const seen = new Map<number, Answer>();
  for (let i = 0; i < 400 && seen.size < WORKERS; i++) {
    const answer = await ask(base, path, { headers });
    if (done(answer)) seen.set(answer.worker, answer);
  }
  if (seen.size < WORKERS) throw new Error(`only workers ${[...seen.keys()].join(', ')} answered as expected`);
  return seen;
}

const MEMORY_ONLY = 'log:\n  level: warn\ncache:\n  disk:\n    enabled: false\n';
const WITH_DISK = 'log:\n  level: warn\n';
/** Claims of a held directory every 100 ms rather than every 5 s (an internal setting for tests; see disk-lock.ts). */
const QUICK_CLAIMS = { [CLAIM_RETRY_ENV]: '100' };

function cacheable(tag = 'all'): (request: unknown, response: ServerResponse) => void {
  return (_request, response) => {
    response.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': tag });
    response.end('cached body');
  };
}

describe('workers: 2', () => {
  it('applies a PURGE made on one worker on every worker before it answers', async () => {
    const origin = await startOrigin(cacheable());
    origins.push(origin);
    const lacquer = await startWorkers(origin.url, MEMORY_ONLY);
    // Each worker has its own memory tier: fill every one.
    await untilEveryWorker(lacquer.url, '/p', {}, (answer) => String(answer.headers['cache-status']).includes('hit'));

    const purge = await ask(lacquer.url, '/p', { method: 'PURGE' });
    expect(purge.status).toBe(200);
    // Asked right after the purge answered, every worker must have dropped it (only-if-cached: 504 rather than fetching it again).
    const after = await untilEveryWorker(lacquer.url, '/p', { 'cache-control': 'only-if-cached' }, () => true);
    for (const answer of after.values()) expect(answer.status, `worker ${answer.worker}`).toBe(504);
  });

  it('applies a tag purge made through the admin listener on every worker before it answers', async () => {
    const origin = await startOrigin(cacheable('product-7'));
    origins.push(origin);
    const lacquer = await startWorkers(origin.url, MEMORY_ONLY);
    await untilEveryWorker(lacquer.url, '/t', {}, (answer) => String(answer.headers['cache-status']).includes('hit'));

    const purge = await ask(adminUrl(lacquer), '/purge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tags: ['product-7'] }) });
    expect(purge.status).toBe(200);
    const after = await untilEveryWorker(lacquer.url, '/t', { 'cache-control': 'only-if-cached' }, () => true);
    for (const answer of after.values()) expect(answer.status, `worker ${answer.worker}`).toBe(504);
  });

  it('serves an entry one worker stored as a disk hit on another, with one origin fetch', async () => {
    const origin = await startOrigin(cacheable());
    origins.push(origin);
    const dir = join(root, `disk-${files++}`);
    const lacquer = await startWorkers(origin.url, WITH_DISK, dir);
    // The primary holds the directory for its workers.
    expect(readFileSync(join(dir, 'lacquer.lock'), 'utf8').split(' ')[0]).toBe(String(lacquer.child.pid));
    const first = await ask(lacquer.url, '/d');
    expect(first.headers['cache-status']).toContain('stored');
    // only-if-cached never goes to the origin: the other worker answers 504 until it knows of the entry, then a hit.
    const hits = await untilEveryWorker(lacquer.url, '/d', { 'cache-control': 'only-if-cached' }, (answer) => answer.status === 200);
    const other = [...hits.values()].find((answer) => answer.worker !== first.worker)!;
    expect(other.headers['cache-status']).toContain('hit');
    expect(other.body).toBe('cached body');
    expect(origin.hits('/d')).toBe(1);
    // Released once every worker has stopped, so the next Lacquer may use the directory.
    expect(await lacquer.stop('SIGTERM')).toBe(0);
    expect(existsSync(join(dir, 'lacquer.lock'))).toBe(false);
  });

  it('replaces a worker killed with SIGKILL, and its clients in flight get an error, not a hang', async () => {
    const held: ServerResponse[] = [];
    const origin = await startOrigin((request, response) => {
      if (request.url.startsWith('/slow')) held.push(response);
      else cacheable()(request, response);
    });
    origins.push(origin);
    const lacquer = await startWorkers(origin.url, MEMORY_ONLY);
    const pids = /pids (\d+), (\d+)/.exec(lacquer.output())!.slice(1).map(Number);

    const clients = Array.from({ length: 8 }, (_, i) =>
      ask(lacquer.url, `/slow/${i}`).then(
        (answer) => ({ ok: true as const, answer }),
        (error: Error) => ({ ok: false as const, error }),
      ),
    );
    const deadline = Date.now() + 20_000;
    while (held.length < clients.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(held).toHaveLength(clients.length);

    process.kill(pids[0]!, 'SIGKILL');
    await lacquer.waitFor('is serving again', 20_000);
    for (const response of held) {
      if (!response.destroyed) {
        response.writeHead(200, { 'cache-control': 'no-store' });
        response.end('late');
      }
    }
    const results = await Promise.all(clients);
    const failed = results.filter((result) => !result.ok);
    const answered = results.filter((result) => result.ok);
    // Round robin gave the killed worker some of the eight; each of those ends at once with a connection error.
    expect(failed.length).toBeGreaterThan(0);
    for (const result of failed) expect(result.error.message).not.toContain('a hang');
    for (const result of answered) expect(result.answer.status).toBe(200);

    // The replacement serves: a pid neither of the first two had.
    const seen = await untilEveryWorker(lacquer.url, '/after', {}, (answer) => answer.status === 200);
    expect([...seen.values()].some((answer) => !pids.includes(answer.pid))).toBe(true);
    expect(lacquer.output()).toMatch(/worker \d \(pid \d+\) exited on SIGKILL/);
    const metrics = (await ask(adminUrl(lacquer), '/metrics')).body;
    expect(metrics).toMatch(/^lacquer_worker_restarts_total 1$/m);
    expect(metrics).toMatch(/^lacquer_workers_alive 2$/m);
  });

  it('has its workers exit when the primary is killed, leaving no orphan', async () => {
    const origin = await startOrigin(cacheable());
    origins.push(origin);
    const lacquer = await startWorkers(origin.url, MEMORY_ONLY);
    const pids = /pids (\d+), (\d+)/.exec(lacquer.output())!.slice(1).map(Number);
    await lacquer.stop('SIGKILL');
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 20_000;
    while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(pids.filter(alive)).toEqual([]);
  });

  it('answers a purge within its bound when another worker is stuck', async () => {
    const origin = await startOrigin(cacheable());
    origins.push(origin);
    const lacquer = await startWorkers(origin.url, MEMORY_ONLY);
    const pids = /pids (\d+), (\d+)/.exec(lacquer.output())!.slice(1).map(Number);
    // One kept-alive connection: the purge goes to the worker that answered on it, not to the stuck one.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await ask(lacquer.url, '/s', { agent });
      const stuck = pids.find((pid) => pid !== first.pid)!;
      process.kill(stuck, 'SIGSTOP');
      try {
        const purge = await ask(lacquer.url, '/s', { method: 'PURGE', agent, timeoutMs: 30_000 });
        expect(purge.status).toBe(200);
        await lacquer.waitFor('was not confirmed by worker(s)');
      } finally {
        process.kill(stuck, 'SIGCONT');
      }
    } finally {
      agent.destroy();
    }
  });

  it('names the worker on every answer when asked to, hits included', async () => {
    // With a Content-Type, a hit is one the fast hit path could answer.
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' });
      response.end('cached body');
    });
    origins.push(origin);
    const lacquer = await startWorkers(origin.url, MEMORY_ONLY);
    const answers = await untilEveryWorker(lacquer.url, '/named', {}, (answer) => /; hit/.test(String(answer.headers['cache-status'])));
    expect([...answers.keys()].sort()).toEqual([1, 2]);
    for (const answer of answers.values()) expect(answer.pid).toBeGreaterThan(0);
  });

  it('passes SIGHUP on to the workers, each of which reloads the config and keeps serving', async () => {
    const origin = await startOrigin(cacheable());
    origins.push(origin);
    const lacquer = await startWorkers(origin.url, MEMORY_ONLY);
    // The config file the workers were started with (the last one written) gains a purge token.
    writeFileSync(join(root, `config-${files - 1}.yaml`), `${MEMORY_ONLY}purge:\n  token: a-token-set-on-reload\n`);
    lacquer.child.kill('SIGHUP');
    for (const slot of [1, 2]) await lacquer.waitFor(`lacquer worker ${slot}: config reloaded: purge.token`);
    await untilEveryWorker(lacquer.url, '/h', {}, (answer) => answer.status === 200);
    // Every worker now wants the token: a PURGE from loopback without it is refused wherever it lands.
    for (let i = 0; i < 6; i++) expect((await fetch(`${lacquer.url}/h`, { method: 'PURGE' })).status).toBe(401);
    expect(lacquer.output()).not.toContain('exited');
  });

  it.skipIf(!existsSync('/proc/self/ns/pid'))('serves without the disk tier while a Lacquer in another PID namespace holds the directory, and takes it over once that lock is stale', { timeout: 60_000 }, async () => {
    const origin = await startOrigin(cacheable());
    origins.push(origin);
    const dir = join(root, `disk-${files++}`);
    await claimDirectory(dir);
    await unlockDirectory(dir);
    // Another container with this hostname on the same volume, its primary pid 1 as well (alive here too: our init).
    const lock = join(dir, 'lacquer.lock');
    writeFileSync(lock, `1 ${hostname()} their-nonce pid:[1]\n`);
    // Its heartbeat, however long this test takes on a loaded machine.
    let heartbeat = setInterval(() => utimesSync(lock, new Date(), new Date()), 1_000);
    try {
      const lacquer = await startWorkers(origin.url, WITH_DISK, dir, QUICK_CLAIMS);
      expect(lacquer.output()).toContain('the disk tier is off until it is free');

      // Every worker serves, passing requests to the origin; nothing is stored, the other lock is left alone.
      const passed = await untilEveryWorker(lacquer.url, '/n', {}, (answer) => answer.status === 200);
      for (const answer of passed.values()) {
        expect(answer.body).toBe('cached body');
        expect(answer.headers['cache-status']).not.toContain('stored');
      }
      expect(readFileSync(lock, 'utf8')).toContain('their-nonce');
      expect((await scrape(adminUrl(lacquer))).get('lacquer_disk_tier_in_use')).toBe(0);

      clearInterval(heartbeat);
      const longAgo = new Date(Date.now() - 120_000);
      utimesSync(lock, longAgo, longAgo);
      await lacquer.waitFor('is free now', 30_000);
      expect(readFileSync(lock, 'utf8').split(' ')[0]).toBe(String(lacquer.child.pid));
      // Each worker's disk tier comes into use once it sees the lock name the primary: then every one answers hits.
      const hit = new Set<number>();
      const deadline = Date.now() + 30_000;
      while (hit.size < WORKERS) {
        if (Date.now() > deadline) throw new Error(`only workers ${[...hit].join(', ')} answered hits within 30 s`);
        const answer = await ask(lacquer.url, '/n');
        expect(answer.body).toBe('cached body');
        if (String(answer.headers['cache-status']).includes('hit')) hit.add(answer.worker);
        else await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // Summed over the workers: both use it.
      expect((await scrape(adminUrl(lacquer))).get('lacquer_disk_tier_in_use')).toBe(WORKERS);

      // The other Lacquer takes the directory back (as if this one had been stopped for longer than 30 s), its lock written whole.
      const theirs = `${lock}.test`;
      writeFileSync(theirs, `1 ${hostname()} their-second-nonce pid:[1]\n`);
      renameSync(theirs, lock);
      heartbeat = setInterval(() => utimesSync(lock, new Date(), new Date()), 1_000);
      await lacquer.waitFor('was taken over by pid 1', 30_000);
      // Every worker's tier goes off, and the primary leaves that lock alone.
      await untilInUse(lacquer, 0);
      expect(readFileSync(lock, 'utf8')).toContain('their-second-nonce');
      // Once it goes stale, the primary takes it again and every worker follows.
      clearInterval(heartbeat);
      utimesSync(lock, longAgo, longAgo);
      await untilInUse(lacquer, WORKERS);
      expect(readFileSync(lock, 'utf8').split(' ')[0]).toBe(String(lacquer.child.pid));

      expect(await lacquer.stop('SIGTERM')).toBe(0);
      expect(existsSync(lock)).toBe(false);
    } finally {
      clearInterval(heartbeat);
    }
  });

  it.skipIf(!existsSync('/proc/self/ns/pid'))('applies a tag purge made while the workers waited for the directory to the entries every worker finds once the primary takes it over', { timeout: 60_000 }, async () => {
    const origin = await startOrigin((request: { url?: string }, response: ServerResponse) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': `all ${String(request.url).slice(1)}` });
      response.end(`body of ${String(request.url)}`);
    });
    origins.push(origin);
    const dir = join(root, `disk-${files++}`);
    // A single process stores /p and /q there and stops.
    const single = await startLacquerProcess(['--origin', origin.url, '--cache-dir', dir]);
    running.push(single);
    for (const path of ['/p', '/q']) expect(String((await ask(single.url, path)).headers['cache-status'])).toContain('stored');
    expect(await single.stop('SIGTERM')).toBe(0);

    // Now another container with this hostname holds the directory, its lock fresh.
    const lock = join(dir, 'lacquer.lock');
    writeFileSync(lock, `1 ${hostname()} their-nonce pid:[1]\n`);
    const heartbeat = setInterval(() => utimesSync(lock, new Date(), new Date()), 1_000);
    let lacquer: LacquerProcess;
    try {
      lacquer = await startWorkers(origin.url, WITH_DISK, dir, QUICK_CLAIMS);
      expect(lacquer.output()).toContain('the disk tier is off until it is free');
      // Relayed to every worker; nothing is indexed yet, so it finds nothing.
      const purge = await ask(adminUrl(lacquer), '/purge', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tags: ['q'] }) });
      expect(purge.status).toBe(200);
    } finally {
      clearInterval(heartbeat);
    }
    const longAgo = new Date(Date.now() - 120_000);
    utimesSync(lock, longAgo, longAgo);
    await lacquer.waitFor('is free now', 30_000);
    // Every worker has scanned the directory (each logs its rebuilt index), so /q below has been judged, not just not reached yet.
    await untilLogged(lacquer, 'index rebuilt from', WORKERS);

    // Every worker serves /p from the directory...
    const onlyCached = { 'cache-control': 'only-if-cached' };
    const hits = await untilEveryWorker(lacquer.url, '/p', onlyCached, (answer) => answer.status === 200);
    for (const answer of hits.values()) expect(answer.body).toBe('body of /p');
    // ...and none serves /q: its files were there, but the purge made meanwhile applies to them.
    const purged = await untilEveryWorker(lacquer.url, '/q', onlyCached, () => true);
    for (const answer of purged.values()) expect(answer.status).toBe(504);
    expect(origin.hits()).toBe(2);
    expect(await lacquer.stop('SIGTERM')).toBe(0);
  });

  it('exits with status 1 when the workers cannot start, without restarting them', async () => {
    const origin = await startOrigin(cacheable());
    origins.push(origin);
    const taken = await startWorkers(origin.url, MEMORY_ONLY);
    const port = new URL(taken.url).port;
    const file = join(root, `config-${files++}.yaml`);
    writeFileSync(file, MEMORY_ONLY);
    const child = spawn(process.execPath, [resolve('dist/proxy/cli.js'), '--workers', '2', '--config', file, '--origin', origin.url, '--listen', `127.0.0.1:${port}`, '--admin', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise<number | null>((done) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.once('exit', (exitCode) => {
        clearTimeout(timer);
        done(exitCode);
      });
    });
    expect(code).toBe(1);
    expect(output).toContain('EADDRINUSE');
    expect(output).toContain('before it could serve; stopping');
  });

  it('on SIGTERM lets every worker finish what it serves, then exits 0', async () => {
    const held: ServerResponse[] = [];
    const origin = await startOrigin((_request, response) => {
      held.push(response);
    });
    origins.push(origin);
    const lacquer = await startWorkers(origin.url, MEMORY_ONLY);
    const inFlight = ask(lacquer.url, '/slow');
    const deadline = Date.now() + 20_000;
    while (held.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(held).toHaveLength(1);

    const exited = lacquer.stop('SIGTERM');
    await lacquer.waitFor(`SIGTERM received, draining ${WORKERS} worker(s)`);
    held[0]!.writeHead(200, { 'cache-control': 'no-store' });
    held[0]!.end('finished during the drain');
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('finished during the drain');
    expect(await exited).toBe(0);
  });

  it('reports on /metrics the sum over workers, wherever the scrape lands, with the shared disk tier counted once', async () => {
    const origin = await startOrigin(cacheable());
    origins.push(origin);
    const lacquer = await startWorkers(origin.url, WITH_DISK, join(root, `disk-${files++}`));
    const served = new Set<number>();
    for (let i = 0; i < 10; i++) served.add((await ask(lacquer.url, `/m/${i % 5}`)).worker);
    expect(served.size).toBe(WORKERS);

    const series = (text: string, name: string) =>
      text
        .split('\n')
        .filter((line) => line.startsWith(name))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    // The last entry stored reaches the other worker's index a moment after its answer.
    const deadline = Date.now() + 20_000;
    while (series((await ask(adminUrl(lacquer), '/metrics')).body, 'lacquer_store_entries{tier="disk"}') < 5 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

    const scrapedBy = new Set<number>();
    for (let i = 0; i < 40 && scrapedBy.size < WORKERS; i++) {
      const scrape = await ask(adminUrl(lacquer), '/metrics');
      expect(scrape.status).toBe(200);
      scrapedBy.add(scrape.worker);
      const text = scrape.body;
      expect(series(text, 'lacquer_requests_total{')).toBe(10);
      const hits = series(text, 'lacquer_cache_hits_total ');
      const cacheableCount = series(text, 'lacquer_cacheable_requests_total ');
      expect(cacheableCount).toBe(10);
      expect(series(text, 'lacquer_cache_hit_ratio ')).toBeCloseTo(hits / cacheableCount, 10);
      expect(text).toContain('lacquer_worker_cache_hit_ratio{worker="1"}');
      expect(text).toContain('lacquer_worker_cache_hit_ratio{worker="2"}');
      expect(text).toContain('lacquer_worker_eventloop_lag_p99_seconds{worker="2"}');
      expect(text).toContain('lacquer_worker_resident_memory_bytes{worker="1"}');
      expect(series(text, 'lacquer_workers_reporting ')).toBe(WORKERS);
      // Five entries in one directory, every worker indexing all five: 5, not 10.
      expect(series(text, 'lacquer_store_entries{tier="disk"}')).toBe(5);
    }
    expect(scrapedBy.size).toBe(WORKERS);
  });
});
