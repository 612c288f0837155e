import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRawOrigin, type RawOrigin } from '../helpers/raw-origin.js';

/**
 * An origin that breaks HTTP framing or header syntax: the client gets a
 * clean gateway error (or the one correct body), the proxy stays up, and
 * nothing truncated or mixed-up is ever stored.
 */

let raw: RawOrigin | undefined;
let proxy: TestProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  await raw?.close();
  proxy = undefined;
  raw = undefined;
});

async function setup(reply: (socket: Socket, count: number) => void): Promise<TestProxy> {
  raw = await startRawOrigin(reply);
  proxy = await startProxy(raw.url, { config: { origin: { headersTimeout: 500, bodyTimeout: 500 } } });
  return proxy;
}

const CACHEABLE = 'cache-control: max-age=60\r\n';

describe('origin framing faults', () => {
  it('stores nothing when the origin closes before sending all the bytes its Content-Length promised', async () => {
    const p = await setup((socket, count) => {
      if (count === 1) socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 100\r\n\r\nonly part`);
      else socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 5\r\n\r\nwhole`);
    });
    const first = await p.fetch('/short');
    expect(first.status).toBe(502);
    expect(p.store.stats().entries).toBe(0);
    const second = await p.fetch('/short');
    expect(second.body).toBe('whole');
    expect((await p.fetch('/short')).headers['cache-status']).toContain('hit');
    expect(raw!.hits()).toBe(2);
  });

  it('keeps exactly Content-Length bytes when the origin sends more, and never lets the excess answer another request', async () => {
    const p = await setup((socket, count) => {
      socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsmuggl${count}`);
    });
    const first = await p.fetch('/long');
    expect(first.body).toBe('first');
    const other = await p.fetch('/other');
    expect(other.body).toBe('first');
    expect(other.body).not.toContain('smuggl');
    expect((await p.fetch('/long')).body).toBe('first');
  });

  it('answers 502 to a chunked body with an invalid chunk size, and stores nothing', async () => {
    const p = await setup((socket) => {
      socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}transfer-encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n`);
    });
    const answer = await p.fetch('/chunks');
    expect(answer.status).toBe(502);
    expect(p.store.stats().entries).toBe(0);
  });

  it('answers 502 when a response has both Content-Length and Transfer-Encoding', async () => {
    const p = await setup((socket) => {
      socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 3\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
    });
    const answer = await p.fetch('/both');
    expect(answer.status).toBe(502);
    expect(p.store.stats().entries).toBe(0);
  });

  it('answers 504 when the origin accepts the connection and never answers', async () => {
    const p = await setup(() => {});
    const answer = await p.fetch('/silent');
    expect(answer.status).toBe(504);
  });

  it('answers 502 when the origin resets the connection before any answer', async () => {
    const p = await setup((socket) => socket.resetAndDestroy());
    expect((await p.fetch('/reset')).status).toBe(502);
  });
});

describe('origin header faults', () => {
  it('answers 502 to a malformed header line', async () => {
    const p = await setup((socket) => socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}this is not a header\r\ncontent-length: 2\r\n\r\nok`));
    expect((await p.fetch('/malformed')).status).toBe(502);
    expect(p.store.stats().entries).toBe(0);
  });

  it('answers 502 to a header block larger than the parser allows', async () => {
    const huge = `x-filler: ${'a'.repeat(128 * 1024)}\r\n`;
    const p = await setup((socket) => socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}${huge}content-length: 2\r\n\r\nok`));
    expect((await p.fetch('/huge')).status).toBe(502);
    expect(p.store.stats().entries).toBe(0);
  });

  it('answers 502 to two different Content-Length values', async () => {
    const p = await setup((socket) => socket.end(`HTTP/1.1 200 OK\r\n${CACHEABLE}content-length: 2\r\ncontent-length: 3\r\n\r\nokk`));
    expect((await p.fetch('/two-lengths')).status).toBe(502);
    expect(p.store.stats().entries).toBe(0);
  });

  it('answers 502 to a status line that is not HTTP', async () => {
    const p = await setup((socket) => socket.end('SMTP ready\r\n\r\n'));
    expect((await p.fetch('/not-http')).status).toBe(502);
  });

  it('joins duplicate Cache-Control lines and takes the most restrictive reading', async () => {
    const p = await setup((socket) => socket.end('HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncache-control: no-store\r\ncontent-length: 2\r\n\r\nok'));
    const answer = await p.fetch('/dup');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('ok');
    expect(p.store.stats().entries).toBe(0);
  });
});
