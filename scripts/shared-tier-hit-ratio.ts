import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { defaults } from '../config/schema.js';
import type { Config } from '../config/types.js';
import { startLacquer, type RunningLacquer } from '../proxy/main.js';
import { startRedis } from './bench/redis-server.js';
import { zipfSequence } from './bench/zipf.js';

/**
 * The hit ratio of three instances behind a round-robin balancer, without
 * the shared tier in Redis, with it, and with it and cross-instance
 * coalescing (lockTtl 2 s), on loopback: the same Zipf-distributed
 * request sequence (seeded) sent to three in-process instances in turn,
 * then to a fourth instance started afterwards (does it start warm?). The
 * hit ratio is 1 - origin fetches / requests, counted at the origin.
 * Bounded: `count` requests per phase, each instance memory-only.
 *
 *   npm run build && node dist/scripts/shared-tier-hit-ratio.js [count=20000] [objects=5000] [concurrency=16]
 */

const count = Number(process.argv[2] ?? 20_000);
const objects = Number(process.argv[3] ?? 5_000);
const concurrency = Number(process.argv[4] ?? 16);

async function main(): Promise<void> {
  let fetches = 0;
  const origin = createServer((req, res) => {
    fetches++;
    res.writeHead(200, { 'cache-control': 'max-age=3600', 'content-type': 'text/plain' });
    res.end(`${req.url} `.padEnd(2048, 'x'));
  });
  await new Promise<void>((done) => origin.listen(0, '127.0.0.1', done));
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  const agent = new Agent({ connections: concurrency });
  const { ranks } = zipfSequence(objects, count, 42);
  const late = zipfSequence(objects, count, 43).ranks;

  const run = async (urls: readonly string[], sequence: readonly number[]): Promise<{ requests: number; fetched: number }> => {
    const before = fetches;
    let next = 0;
    const worker = async () => {
      while (next < sequence.length) {
        const i = next++;
        // One Host for all, as behind a balancer: keys name the host, and each instance has its own port.
        const response = await request(`${urls[i % urls.length]}/object/${sequence[i]}`, { dispatcher: agent, headers: { host: 'shop.example' } });
        await response.body.text();
        if (response.statusCode !== 200) throw new Error(`status ${response.statusCode}`);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { requests: sequence.length, fetched: fetches - before };
  };

  try {
    for (const [shared, lockTtl] of [[false, 0], [true, 0], [true, 2000]] as const) {
      const redis = await startRedis();
      const instances: RunningLacquer[] = [];
      try {
        for (let i = 0; i < 3; i++) instances.push(await startLacquer(configFor(originUrl, redis.url, shared, `i${i}`, lockTtl)));
        const three = await run(instances.map((instance) => instance.proxyUrl), ranks);
        // Shared copies are written in the background; let the last few land before the newcomer starts.
        await new Promise((done) => setTimeout(done, 500));
        const newcomer = await startLacquer(configFor(originUrl, redis.url, shared, 'late', lockTtl));
        instances.push(newcomer);
        const fresh = await run([newcomer.proxyUrl], late);
        const ratio = ({ requests, fetched }: { requests: number; fetched: number }) => (1 - fetched / requests).toFixed(3);
        process.stdout.write(
          `shared tier ${shared ? `on${lockTtl > 0 ? `, lockTtl ${lockTtl} ms` : ''}` : 'off'}: 3 instances round-robin, ${three.requests} requests over ${objects} objects (Zipf s=1): ` +
            `${three.fetched} origin fetches, hit ratio ${ratio(three)}; a 4th instance started afterwards, ${fresh.requests} requests: ` +
            `${fresh.fetched} origin fetches, hit ratio ${ratio(fresh)}\n`,
        );
      } finally {
        for (const instance of instances) await instance.close();
        await redis.stop('SIGKILL');
      }
    }
  } finally {
    await agent.close();
    await new Promise((done) => origin.close(done));
  }
}

function configFor(originUrl: string, redisUrl: string, shared: boolean, id: string, lockTtl: number): Config {
  const config = defaults();
  config.listen = { host: '127.0.0.1', port: 0 };
  config.admin = { host: '127.0.0.1', port: 0 };
  config.origin.url = originUrl;
  config.log.level = 'silent';
  config.cache.disk.enabled = false;
  config.redis.url = redisUrl;
  config.redis.instanceId = id;
  config.redis.shared.enabled = shared;
  config.redis.shared.lockTtl = lockTtl;
  return config;
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
