import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startLacquerProcess, type LacquerProcess } from '../helpers/child.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { fetchText } from '../helpers/proxy.js';
import { freePort } from '../helpers/redis.js';
import { tempDir } from '../helpers/tempdir.js';

/** Signals reaching a primary and its workers at awkward moments: a reload before a drain, a reload while a worker starts. */

const root = tempDir('lacquer-workers-signals-');
const running: LacquerProcess[] = [];
const origins: TestOrigin[] = [];
let files = 0;

afterEach(async () => {
  for (const lacquer of running.splice(0)) await lacquer.stop('SIGKILL');
  for (const origin of origins.splice(0)) await origin.close();
});

const MEMORY_ONLY = 'log:\n  level: info\ncache:\n  disk:\n    enabled: false\n';

async function workers(originUrl: string, yaml: string): Promise<{ lacquer: LacquerProcess; file: string }> {
  const file = join(root, `config-${files++}.yaml`);
  writeFileSync(file, yaml);
  const lacquer = await startLacquerProcess(['--workers', '2', '--origin', originUrl, '--config', file], { LACQUER_LOG_LEVEL: '' });
  running.push(lacquer);
  return { lacquer, file };
}

describe('signals to workers', () => {
  it('a drain deadline raised by SIGHUP holds for the primary too: a request still in flight past the old one finishes whole', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const origin = await startOrigin(async (request, response) => {
      if (request.url === '/slow') await gate;
      response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'no-store' });
      response.end('whole');
    });
    origins.push(origin);
    const { lacquer, file } = await workers(origin.url, `${MEMORY_ONLY}shutdown:\n  drainTimeout: 1s\n`);
    writeFileSync(file, `${MEMORY_ONLY}shutdown:\n  drainTimeout: 30s\n`);
    lacquer.child.kill('SIGHUP');
    await expect.poll(() => lacquer.output().split('config reloaded: shutdown.drainTimeout').length - 1, { timeout: 10_000 }).toBe(2);
    const inFlight = fetchText(`${lacquer.url}/slow`).then(
      (answer) => answer,
      (error: unknown) => ({ error: String(error) }),
    );
    await expect.poll(() => origin.hits('/slow'), { timeout: 10_000 }).toBe(1);
    const exited = lacquer.stop('SIGTERM');
    // Past the old deadline and the primary's grace for a stuck worker (1 s + 5 s), inside the new one.
    await new Promise((resolve) => setTimeout(resolve, 7_500));
    release();
    expect(await inFlight).toMatchObject({ status: 200, body: 'whole' });
    expect(await exited).toBe(0);
  }, 40_000);

  it('a SIGHUP while a replacement worker is starting does not end it', async () => {
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600' });
      response.end('x');
    });
    origins.push(origin);
    // With Redis unreachable, a worker waits redis.connectTimeout for the purge stream before it listens: a start that takes a while.
    const { lacquer } = await workers(origin.url, `${MEMORY_ONLY}redis:\n  url: redis://127.0.0.1:${await freePort()}\n  connectTimeout: 3s\n`);
    const pid = Number(/pids (\d+),/.exec(lacquer.output())![1]);
    process.kill(pid, 'SIGKILL');
    await lacquer.waitFor('starting a new one');
    await new Promise((resolve) => setTimeout(resolve, 500));
    lacquer.child.kill('SIGHUP');
    await lacquer.waitFor('config reloaded', 10_000);
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    expect(lacquer.output()).not.toContain('exited on SIGHUP');
    expect((await fetchText(`${lacquer.url}/x`)).status).toBe(200);
  }, 40_000);

  it('a summed counter never goes down while a worker misses a scrape (it is counted with its last report)', async () => {
    const origin = await startOrigin((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600' });
      response.end('x');
    });
    origins.push(origin);
    const { lacquer } = await workers(origin.url, MEMORY_ONLY);
    /** One request on a connection of its own, so either worker may take it; undefined if the one it reached is stopped. */
    const text = async (url: string): Promise<string | undefined> => {
      try {
        const answer = await request(url, { headersTimeout: 9_000, bodyTimeout: 9_000, reset: true });
        return await answer.body.text();
      } catch {
        return undefined;
      }
    };
    const requests = (metrics: string) => metrics.split('\n').filter((line) => line.startsWith('lacquer_requests_total')).reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
    for (let i = 0; i < 40; i++) await text(`${lacquer.url}/p${i}`);
    const before = requests((await text(`${lacquer.adminUrl}/metrics`))!);
    const stopped = Number(/pids (\d+),/.exec(lacquer.output())![1]);
    process.kill(stopped, 'SIGSTOP');
    try {
      let during: string | undefined;
      for (let i = 0; i < 4 && during === undefined; i++) during = await text(`${lacquer.adminUrl}/metrics`);
      expect(during).toContain('lacquer_workers_reporting 1');
      expect(requests(during!)).toBeGreaterThanOrEqual(before);
    } finally {
      process.kill(stopped, 'SIGCONT');
    }
  }, 60_000);
});
