import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRawOrigin, type RawOrigin } from '../helpers/raw-origin.js';

/**
 * Faults must not leak: after a burst of every kind of origin failure, the
 * process holds the descriptors it held before (give or take the origin
 * pool's idle keep-alive sockets), the origin sees no socket left open by a
 * request that failed, and no promise was left rejected without a handler.
 */

const CACHEABLE = 'cache-control: max-age=60\r\n';
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

let raw: RawOrigin;
let proxy: TestProxy;
let refusing: TestProxy;
let client: Agent;

/** Answers by path: each path is one way an origin can fail. */
function faulty(socket: Socket, _count: number, head: string): void {
  const path = /^[A-Z]+ (\S+)/.exec(head)?.[1] ?? '/';
  switch (path.split('?')[0]) {
    case '/ok':
      return void socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 2\r\nconnection: close\r\n\r\nok`);
    case '/silent':
      return; // accepts, never answers
    case '/stall':
      return void socket.write(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 1000\r\n\r\nthe start and then nothing`);
    case '/reset':
      socket.write(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 100000\r\n\r\n${'x'.repeat(5000)}`);
      return void setTimeout(() => socket.resetAndDestroy(), 20);
    case '/short':
      return void socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 100\r\n\r\nonly part`);
    case '/long':
      return void socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 2\r\n\r\nokAND MORE BYTES THAN PROMISED`);
    case '/huge-header':
      return void socket.end(`HTTP/1.1 200 OK\r\nx-filler: ${'a'.repeat(128 * 1024)}\r\ncontent-length: 2\r\n\r\nok`);
    case '/bad-status':
      return void socket.end('HTTP/1.1 999 Nonsense\r\ncontent-length: 2\r\n\r\nok');
    case '/not-http':
      return void socket.end('SSH-2.0-OpenSSH\r\n\r\n');
    case '/malformed':
      return void socket.end(`HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 2\r\n\r\nok`);
    default:
      return void socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
  }
}

const FAULTS = ['/silent', '/stall', '/reset', '/short', '/long', '/huge-header', '/bad-status', '/not-http', '/malformed'];

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

async function get(url: string): Promise<{ status: number; body: string } | { error: string }> {
  try {
    const response = await undiciRequest(url, { dispatcher: client });
    return { status: response.statusCode, body: await response.body.text() };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/**
 * Descriptors not explained by the origin's open sockets: each of those is
 * two descriptors in this process (the pool's end and the origin's end),
 * and idle keep-alive sockets in the pool are allowed to stay.
 */
function unexplained(originSockets: number): number {
  return openDescriptors() - 2 * originSockets;
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  raw = await startRawOrigin(faulty);
  const timeouts = { origin: { headersTimeout: 300, bodyTimeout: 300 } };
  proxy = await startProxy(raw.url, { config: timeouts });
  // Port 1 on loopback: nothing listens, connections are refused.
  refusing = await startProxy('http://127.0.0.1:1', { config: timeouts });
  client = new Agent({ connections: 16 });
});

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled);
  await client.close();
  await proxy.close();
  await refusing.close();
  await raw.close();
});

describe('after origin faults', () => {
  it('returns to the baseline of descriptors and origin sockets, with no unhandled rejection', async () => {
    // Warm up both proxies so lazily created resources (pools, timers, parsers) exist in the baseline.
    expect(await get(`${proxy.url}/ok?warm`)).toMatchObject({ status: 200, body: 'ok' });
    expect(await get(`${refusing.url}/warm`)).toMatchObject({ status: 502 });
    await client.close();
    client = new Agent({ connections: 16 });
    await expect.poll(() => raw.connections(), { timeout: 10_000 }).toBe(0);
    const baseline = unexplained(raw.connections());

    for (let round = 0; round < 5; round++) {
      const answers = await Promise.all([
        ...FAULTS.map((path) => get(`${proxy.url}${path}?round=${round}`)),
        get(`${refusing.url}/refused?round=${round}`),
        get(`${proxy.url}/ok?round=${round}`),
      ]);
      for (const [i, answer] of answers.entries()) {
        const path = i < FAULTS.length ? FAULTS[i] : i === FAULTS.length ? '/refused' : '/ok';
        if (path === '/ok') expect(answer).toEqual({ status: 200, body: 'ok' });
        else if (path === '/long') expect(answer).toMatchObject({ status: 200, body: 'ok' });
        // A fault found after the head went out (stall, reset, short) can only end the client's stream early.
        else if ('status' in answer) expect([200, 502, 504], `${path}: ${JSON.stringify(answer)}`).toContain(answer.status);
        else expect(['/stall', '/reset', '/short'], `${path}: ${answer.error}`).toContain(path);
        if ('status' in answer && answer.status === 200 && path !== '/ok' && path !== '/long') expect(answer.body, path).not.toBe('');
      }
    }
    const served = raw.hits();
    expect(served).toBeGreaterThanOrEqual(5 * (FAULTS.length + 1));

    await client.close();
    client = new Agent({ connections: 16 });
    // The failed requests' origin sockets close (the silent ones at the proxy's timeouts); idle pooled ones may stay.
    await expect.poll(() => raw.connections(), { timeout: 15_000 }).toBe(0);
    await expect.poll(() => unexplained(raw.connections()), { timeout: 15_000 }).toBeLessThanOrEqual(baseline);
    // Nothing broken was stored: only the well-formed /ok answers (and the 2 bytes of /long) are entries.
    for (const path of ['/silent', '/stall', '/reset', '/short', '/huge-header', '/bad-status', '/not-http', '/malformed']) {
      expect(await get(`${proxy.url}${path}?round=0`), path).not.toMatchObject({ status: 200, body: expect.stringMatching(/./) });
    }
    await client.close();
    client = new Agent({ connections: 16 });
    expect(unhandled).toEqual([]);
  });

  it('holds no extra descriptors after an origin flaps up and down under a bounded load', async () => {
    let server: Server | undefined;
    const sockets = new Set<Socket>();
    const listen = (port: number) =>
      new Promise<void>((done, fail) => {
        server = createServer((request, response) => {
          response.writeHead(200, { 'cache-control': 'max-age=1', 'content-type': 'text/plain' });
          response.end(`body of ${request.url}`);
        });
        server.on('connection', (socket) => {
          sockets.add(socket);
          socket.on('close', () => sockets.delete(socket));
        });
        server.once('error', fail);
        server.listen(port, '127.0.0.1', () => done());
      });
    const down = () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server!.close(() => done());
      });
    await listen(0);
    const port = (server!.address() as AddressInfo).port;
    const flapping = await startProxy(`http://127.0.0.1:${port}`, { config: { origin: { headersTimeout: 1_000, bodyTimeout: 1_000, connectTimeout: 1_000 } } });
    try {
      expect(await get(`${flapping.url}/warm`)).toMatchObject({ status: 200 });
      await client.close();
      client = new Agent({ connections: 16 });
      const baseline = openDescriptors() - 2 * sockets.size;

      // 8 workers, 2,000 requests at most, over 40 paths, while the origin goes down and up 6 times.
      let sent = 0;
      const statuses = new Map<number | string, number>();
      const wrong: string[] = [];
      const worker = async () => {
        while (sent < 2_000) {
          const path = `/p${sent++ % 40}`;
          const answer = await get(`${flapping.url}${path}`);
          const key = 'status' in answer ? answer.status : 'error';
          statuses.set(key, (statuses.get(key) ?? 0) + 1);
          if ('status' in answer && answer.status === 200 && answer.body !== `body of ${path}`) wrong.push(`${path}: ${answer.body}`);
        }
      };
      const flaps = (async () => {
        for (let i = 0; i < 6 && sent < 2_000; i++) {
          await new Promise((r) => setTimeout(r, 50));
          await down();
          await new Promise((r) => setTimeout(r, 50));
          await listen(port);
        }
      })();
      await Promise.all([...Array.from({ length: 8 }, worker), flaps]);

      expect(wrong).toEqual([]);
      expect(statuses.get('error') ?? 0).toBe(0);
      for (const status of statuses.keys()) expect([200, 502, 503, 504]).toContain(status);
      expect(statuses.get(200) ?? 0).toBeGreaterThan(0);

      await client.close();
      client = new Agent({ connections: 16 });
      await expect.poll(() => openDescriptors() - 2 * sockets.size, { timeout: 15_000 }).toBeLessThanOrEqual(baseline);
      expect(unhandled).toEqual([]);
    } finally {
      await flapping.close();
      await down();
    }
  });
});
