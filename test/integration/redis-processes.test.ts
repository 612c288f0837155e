import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLacquerProcess, type LacquerProcess } from '../helpers/child.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { fetchText } from '../helpers/proxy.js';
import { startRedis, type TestRedis } from '../helpers/redis.js';
import { tempDir } from '../helpers/tempdir.js';

/** Separate `lacquer` processes, configured only through LACQUER_REDIS_URL, share purges through one redis-server. */

let origin: TestOrigin;
let redis: TestRedis;
const processes: LacquerProcess[] = [];

beforeAll(async () => {
  origin = await startOrigin((request, response, count) => {
    response.writeHead(200, { 'cache-control': 'max-age=600', 'surrogate-key': request.url.slice(1) });
    response.end(`${request.url}#${count}`);
  });
  redis = await startRedis();
});

afterAll(async () => {
  await Promise.all(processes.map((child) => child.stop('SIGTERM')));
  await redis.stop('SIGKILL');
  await origin.close();
});

const adminUrl = (child: LacquerProcess) => /admin:\s+(http:\/\/\S+)/.exec(child.output())![1]!;

describe('lacquer processes on one Redis', () => {
  it('a tag purge made through one process reaches the others', async () => {
    for (let i = 0; i < 3; i++) {
      processes.push(await startLacquerProcess(['--origin', origin.url, '--cache-dir', tempDir('lacquer-redis-proc-')], { LACQUER_REDIS_URL: redis.url }));
    }
    const [a, b, c] = processes as [LacquerProcess, LacquerProcess, LacquerProcess];
    const get = async (child: LacquerProcess) => (await fetchText(`${child.url}/news`, { headers: { host: 'site.example' } })).body;
    const before = [await get(a), await get(b), await get(c)];
    expect(new Set(before).size).toBe(3);

    const answer = await fetchText(`${adminUrl(a)}/purge`, { method: 'POST', body: '{"tags":["news"]}' });
    expect(answer.status).toBe(200);
    for (const [i, child] of [b, c].entries()) {
      const deadline = Date.now() + 10_000;
      while ((await get(child)) === before[i + 1]) {
        if (Date.now() > deadline) throw new Error(`the purge did not reach process ${i + 1}:\n${child.output()}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    expect(b.output()).toMatch(/purge stream read to its end/);
  });

  it('a purge made on another instance reaches every worker of a multi-worker instance', async () => {
    const workers = await startLacquerProcess(['--origin', origin.url, '--cache-dir', tempDir('lacquer-redis-workers-'), '--workers', '2'], { LACQUER_REDIS_URL: redis.url });
    processes.push(workers);
    const other = await startLacquerProcess(['--origin', origin.url, '--cache-dir', tempDir('lacquer-redis-proc-')], { LACQUER_REDIS_URL: redis.url });
    processes.push(other);
    // Each worker reads the stream under its own id.
    await workers.waitFor(':w1","caughtUp":true');
    await workers.waitFor(':w2","caughtUp":true');
    const get = async () => (await fetchText(`${workers.url}/sport`, { headers: { host: 'site.example' } })).body;
    const before = new Set<string>();
    for (let i = 0; i < 20; i++) before.add(await get());
    expect((await fetchText(`${adminUrl(other)}/purge`, { method: 'POST', body: '{"tags":["sport"]}' })).status).toBe(200);
    // Whichever worker answers, the old body is gone once the purge has reached both.
    const deadline = Date.now() + 10_000;
    for (;;) {
      const after = new Set<string>();
      for (let i = 0; i < 20; i++) after.add(await get());
      if ([...after].every((body) => !before.has(body))) break;
      if (Date.now() > deadline) throw new Error(`workers still serve ${[...after].join(', ')}:\n${workers.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
});
