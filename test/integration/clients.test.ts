import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import type { OriginHandler } from '../helpers/origin.js';
import { useRig } from '../helpers/rig.js';
import { fetchText, type TestProxy } from '../helpers/proxy.js';

/**
 * Clients that misbehave: they leave mid-request or mid-response, pipeline,
 * or sit on idle keep-alive connections. The proxy keeps serving everyone
 * else and releases what the departed client held.
 */

const rig = useRig();
const setup = (handler: OriginHandler): Promise<TestProxy> => rig.start(handler);

function gate(): { wait: Promise<void>; release: () => void } {
  let release!: () => void;
  const wait = new Promise<void>((done) => (release = done));
  return { wait, release };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((done) => setTimeout(done, 5));
}

function rawConnect(url: string): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((done, fail) => {
    const socket = connect(Number(port), hostname, () => done(socket));
    socket.once('error', fail);
  });
}

describe('clients that leave', () => {
  it('serves the leader and the other waiters when one waiter disconnects', async () => {
    const g = gate();
    const p = await setup(async (_request, response) => {
      await g.wait;
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end('for everyone');
    });
    const leader = p.fetch('/w');
    await until(() => rig.origin.hits() === 1);
    const controller = new AbortController();
    const quitter = undiciRequest(`${p.url}/w`, { signal: controller.signal }).catch((error: unknown) => error);
    const stayers = Array.from({ length: 5 }, () => p.fetch('/w'));
    await new Promise((done) => setTimeout(done, 20));
    controller.abort();
    await quitter;
    g.release();
    expect((await leader).body).toBe('for everyone');
    for (const stayer of await Promise.all(stayers)) expect(stayer.body).toBe('for everyone');
    expect(rig.origin.hits()).toBe(1);
  });

  it('stops reading from the origin when a client leaves in the middle of a streamed response', async () => {
    let originClosed = false;
    const p = await setup((request, response) => {
      if (request.url !== '/endless') return void response.end('short');
      // Uncacheable and endless: only the client's departure can end it.
      response.writeHead(200, { 'cache-control': 'no-store' });
      const timer = setInterval(() => response.write(Buffer.alloc(16 * 1024, 120)), 5);
      response.on('close', () => {
        clearInterval(timer);
        originClosed = true;
      });
    });
    const controller = new AbortController();
    const answer = await undiciRequest(`${p.url}/endless`, { signal: controller.signal });
    for await (const _chunk of answer.body) break;
    controller.abort();
    await until(() => originClosed);
    expect((await p.fetch('/after')).status).toBe(200);
  });

  it('answers a client that leaves before finishing its request body, and keeps serving others', async () => {
    const p = await setup((request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end(`got ${request.body.length}`);
    });
    const socket = await rawConnect(p.url);
    socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly the start');
    await new Promise((done) => setTimeout(done, 30));
    socket.destroy();
    const after = await p.fetch('/after');
    expect(after.status).toBe(200);
  });
});

describe('slow clients', () => {
  it('cuts off a client that dribbles its headers (slowloris) at limits.headersTimeout with 408, while others are served', async () => {
    const proxy = await rig.start((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain' });
      response.end('served');
    }, { config: { limits: { headersTimeout: 1_000, requestTimeout: 60_000 } } });
    const origin = rig.origin;
    const slow = await rawConnect(proxy.url);
    let received = '';
    slow.on('data', (chunk: Buffer) => (received += chunk.toString()));
    slow.on('error', () => {});
    const closed = new Promise<number>((done) => slow.once('close', () => done(Date.now())));
    const opened = Date.now();
    slow.write('GET /slow HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    // One header byte every 100 ms: never idle, never finished.
    let n = 0;
    const dribble = setInterval(() => {
      if (!slow.destroyed) slow.write(n++ % 20 === 19 ? '\r\nX-More: ' : 'a');
    }, 100);
    try {
      for (let i = 0; i < 5; i++) expect((await proxy.fetch(`/fast-${i}`)).body).toBe('served');
      const closedAt = await closed;
      // Node's default would allow 60 s; the configured 1 s bound is checked every 250 ms.
      expect(closedAt - opened).toBeLessThan(10_000);
      expect(closedAt - opened).toBeGreaterThanOrEqual(900);
      expect(received).toMatch(/^HTTP\/1\.1 408 /);
      expect(origin.requests.map((request) => request.url)).not.toContain('/slow');
      expect((await proxy.fetch('/after')).body).toBe('served');
    } finally {
      clearInterval(dribble);
      slow.destroy();
    }
  });
});

describe('pipelining', () => {
  it('answers pipelined requests in order on one connection', async () => {
    const p = await setup((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
      response.end(`answer for ${request.url}`);
    });
    const socket = await rawConnect(p.url);
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
    socket.write('GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    await new Promise((done) => socket.on('close', done));
    const bodies = [...text.matchAll(/answer for \/(one|two)/g)].map((match) => match[0]);
    expect(bodies).toEqual(['answer for /one', 'answer for /two', 'answer for /one']);
    expect(text.split('HTTP/1.1 200').length - 1).toBe(3);
    expect(rig.origin.hits()).toBe(2);
  });
});

describe('idle connections', () => {
  const CLI = resolve('dist/proxy/cli.js');
  let child: ChildProcess | undefined;

  afterEach(() => {
    child?.kill('SIGKILL');
    child = undefined;
  });

  it('holds 10,000 idle keep-alive connections and still answers a new client', async () => {
    const origin = await rig.startOriginOnly((_request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '2' });
      response.end('ok');
    });
    // A separate process, so each side's 10,000 sockets count against its own descriptor limit.
    child = spawn(process.execPath, [CLI, '--origin', origin.url, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
      env: { ...process.env, LACQUER_LOG_LEVEL: 'warn', LACQUER_CONFIG: '', LACQUER_CACHE_DIR: mkdtempSync(join(tmpdir(), 'lacquer-idle-')) },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const proxyUrl = await new Promise<string>((done, fail) => {
      let out = '';
      child!.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /listening on (http:\/\/\S+)/.exec(out);
        if (match) done(match[1]!);
      });
      child!.once('exit', (code) => fail(new Error(`lacquer exited early with ${code}`)));
    });

    const sockets: Socket[] = [];
    let answered = 0;
    try {
      for (let batch = 0; batch < 20; batch++) {
        const opened = await Promise.all(Array.from({ length: 500 }, () => rawConnect(proxyUrl)));
        for (const socket of opened) {
          socket.on('data', () => (answered += 1));
          socket.on('error', () => {});
          socket.write('GET /idle HTTP/1.1\r\nHost: x\r\n\r\n');
        }
        sockets.push(...opened);
      }
      await until(() => answered >= sockets.length);
      expect(sockets.filter((socket) => !socket.destroyed).length).toBe(10_000);
      const fresh = await fetchText(`${proxyUrl}/idle`, { headers: { host: 'x' } });
      expect(fresh.status).toBe(200);
      expect(fresh.body).toBe('ok');
      expect(fresh.headers['cache-status']).toContain('hit');
      // 10,000 requests for one key, and the origin saw one.
      expect(origin.hits()).toBe(1);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  }, 120_000);
});
