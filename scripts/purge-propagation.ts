import { spawn, type ChildProcess } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request } from 'undici';
import { defaults } from '../config/schema.js';
import { startLacquer } from '../proxy/main.js';
import type { PurgeEvent } from '../purge/events.js';
import { startRedis } from './bench/redis-server.js';

/**
 * Purge propagation latency through Redis, on loopback: a real
 * redis-server, instance A and a bystander C as `lacquer` child processes,
 * instance B in this process. Each round purges one tag through A's admin
 * API and times, from sending the request, until B has applied the purge
 * (B's own purge event, source "relay"); one purge at a time, each tag
 * naming one entry B holds. Bounded: `count` purges, each given at most 5 s,
 * the whole run at most `maxSeconds`.
 *
 *   npm run build && node dist/scripts/purge-propagation.js [count=1000] [maxSeconds=120]
 */

const CLI = resolve('dist/proxy/cli.js');
const count = Number(process.argv[2] ?? 1000);
const maxSeconds = Number(process.argv[3] ?? 120);
const PER_PURGE_MS = 5000;

async function main(): Promise<void> {
  const origin = createServer((req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=3600', 'surrogate-key': (req.url ?? '/').slice('/item/'.length) });
    res.end('x'.repeat(256));
  });
  await new Promise<void>((done) => origin.listen(0, '127.0.0.1', done));
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
  const redis = await startRedis();
  const children: ChildProcess[] = [];
  try {
    const a = await startChild(originUrl, redis.url, children);
    await startChild(originUrl, redis.url, children);

    const config = defaults();
    config.listen = { host: '127.0.0.1', port: 0 };
    config.admin = { host: '127.0.0.1', port: 0 };
    config.origin.url = originUrl;
    config.log.level = 'warn';
    config.cache.disk.enabled = false;
    config.redis.url = redis.url;
    config.redis.instanceId = 'b-measured';
    const b = await startLacquer(config);
    try {
      // Each purge then removes one entry on B, as a real tag purge would.
      for (let i = 0; i < count; i++) await (await request(`${b.proxyUrl}/item/p${i}`)).body.text();

      let applied: (() => void) | undefined;
      const onPurge = (message: unknown) => {
        if ((message as PurgeEvent).source === 'relay') applied?.();
      };
      subscribe('lacquer:purge', onPurge);
      const propagation: number[] = [];
      const answered: number[] = [];
      let purgedOnB = 0;
      const deadline = performance.now() + maxSeconds * 1000;
      try {
        for (let i = 0; i < count && performance.now() < deadline; i++) {
          const reached = new Promise<number>((done, fail) => {
            const timer = setTimeout(() => fail(new Error(`purge ${i} did not reach B within ${PER_PURGE_MS} ms`)), PER_PURGE_MS);
            applied = () => {
              clearTimeout(timer);
              done(performance.now());
            };
          });
          const started = performance.now();
          const response = await request(`${a.adminUrl}/purge`, { method: 'POST', body: JSON.stringify({ tags: [`p${i}`] }) });
          await response.body.text();
          if (response.statusCode !== 200) throw new Error(`purge ${i} answered ${response.statusCode}`);
          answered.push(performance.now() - started);
          propagation.push((await reached) - started);
        }
      } finally {
        unsubscribe('lacquer:purge', onPurge);
      }
      const metrics = await (await request(`${b.adminUrl}/metrics`)).body.text();
      purgedOnB = Number(/^lacquer_purged_entries_total\{kind="tag"\} (\d+)/m.exec(metrics)?.[1] ?? 0);
      report(propagation, answered, purgedOnB);
    } finally {
      await b.close();
    }
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, 'SIGTERM');
    await Promise.all(children.map((child) => (child.exitCode === null && child.signalCode === null ? new Promise((done) => child.once('exit', done)) : undefined)));
    await redis.stop('SIGKILL');
    await new Promise((done) => origin.close(done));
  }
}

function report(propagation: number[], answered: number[], purgedOnB: number): void {
  const line = (name: string, values: number[]) => {
    const sorted = [...values].sort((x, y) => x - y);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!.toFixed(2);
    const mean = (values.reduce((sum, v) => sum + v, 0) / values.length).toFixed(2);
    return `${name}: p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, p99 ${at(0.99)} ms, max ${at(1)} ms, mean ${mean} ms`;
  };
  process.stdout.write(
    `${propagation.length} purges (one tag each) through A, applied on B via Redis; entries purged on B: ${purgedOnB}\n` +
      `${line('propagation (request sent to A -> applied on B)', propagation)}\n` +
      `${line('A answered the purge request', answered)}\n` +
      `under 200 ms: ${propagation.filter((ms) => ms < 200).length} of ${propagation.length}\n`,
  );
}

async function startChild(originUrl: string, redisUrl: string, children: ChildProcess[]): Promise<{ adminUrl: string }> {
  const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--origin', originUrl, '--cache-dir', mkdtempSync(join(tmpdir(), 'lacquer-propagation-'))], {
    env: { ...process.env, LACQUER_REDIS_URL: redisUrl, LACQUER_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const deadline = Date.now() + 30_000;
  while (!/admin:\s+http/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`lacquer did not start:\n${out}`);
    await new Promise((done) => setTimeout(done, 20));
  }
  return { adminUrl: /admin:\s+(http:\/\/\S+)/.exec(out)![1]! };
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
