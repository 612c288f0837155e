import { createServer } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { TestProxy } from '../helpers/proxy.js';
import { useRig } from '../helpers/rig.js';

/**
 * Request smuggling (RFC 9112 §6.3, §11.2): a message whose framing two
 * parsers could read differently must be refused with 400 and its
 * connection closed, and must never reach the origin.
 */

const rig = useRig();

async function setup(): Promise<TestProxy> {
  return rig.start((_request, response) => {
    response.writeHead(200, { 'cache-control': 'max-age=60' });
    response.end('ok');
  });
}

interface RawExchange {
  readonly text: string;
  /** Whether the proxy closed the connection itself (rather than the test giving up on it). */
  readonly closedByServer: boolean;
}

/** Writes raw bytes (optionally in parts, with pauses between) and reads until the proxy closes the connection. */
function exchange(url: string, parts: string[], pauseMs = 0): Promise<RawExchange> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect(Number(port), hostname);
    let text = '';
    let settled = false;
    const finish = (closedByServer: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closedByServer });
    };
    const timer = setTimeout(() => finish(false), 3_000);
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
    socket.on('connect', async () => {
      for (const [index, part] of parts.entries()) {
        if (index > 0 && pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
        if (!socket.destroyed) socket.write(part);
      }
    });
  });
}

const MESSAGES: Record<string, string> = {
  'both Content-Length and Transfer-Encoding': 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'two different Content-Length values': 'POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  'a Transfer-Encoding that does not end in chunked': 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
  'an obs-fold continuation line': 'GET /a HTTP/1.1\r\nHost: x\r\nX-Note: one\r\n two\r\n\r\n',
  'an invalid chunk size': 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
  'a NUL in a header value': 'GET /a HTTP/1.1\r\nHost: x\r\nX-Note: a\u0000b\r\n\r\n',
  'a bare CR in a header value': 'GET /a HTTP/1.1\r\nHost: x\r\nX-Note: a\rb\r\n\r\n',
  'a space before the colon of a field name': 'GET /a HTTP/1.1\r\nHost: x\r\nContent-Length : 0\r\n\r\n',
};

describe('request smuggling', () => {
  for (const [what, message] of Object.entries(MESSAGES)) {
    it(`refuses a request with ${what}: 400, connection closed, nothing forwarded`, async () => {
      const p = await setup();
      rig.origin.requests.length = 0;
      const answer = await exchange(p.url, [message]);
      expect(answer.text.startsWith('HTTP/1.1 400 ')).toBe(true);
      expect(answer.closedByServer).toBe(true);
      expect(rig.origin.hits()).toBe(0);
      // The proxy is still up and serving.
      expect((await p.fetch('/after')).status).toBe(200);
    });
  }

  it('never lets an origin see a complete request when a chunk size turns out invalid after the head was forwarded', async () => {
    // An origin that counts the request bodies it received whole.
    let completed = 0;
    const heads = createServer((request, response) => {
      request.on('error', () => {});
      request.resume();
      request.on('end', () => {
        completed += 1;
        response.end('complete');
      });
    });
    await new Promise<void>((resolve) => heads.listen(0, '127.0.0.1', resolve));
    const port = (heads.address() as { port: number }).port;
    const proxy = await rig.startProxyTo(`http://127.0.0.1:${port}`);
    try {
      const answer = await exchange(
        proxy.url,
        ['POST /stream HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n', 'zz\r\nsmuggled\r\n0\r\n\r\n'],
        100,
      );
      expect(answer.closedByServer).toBe(true);
      // Whatever the origin saw began, it never saw a complete message, so it never answered "complete".
      expect(answer.text).not.toContain('complete');
      expect(completed).toBe(0);
      expect((await proxy.fetch('/after')).status).toBe(200);
    } finally {
      await new Promise<void>((resolve) => {
        heads.closeAllConnections();
        heads.close(() => resolve());
      });
    }
  });
});
