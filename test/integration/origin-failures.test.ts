import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useRig } from '../helpers/rig.js';
import { startRawOrigin } from '../helpers/raw-origin.js';

const rig = useRig();

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('origin failures', () => {
  it('answers 502 when the origin refuses connections, and stays up', async () => {
    const proxy = await rig.startProxyTo(`http://127.0.0.1:${await closedPort()}`);
    const answer = await proxy.fetch('/x');
    expect(answer.status).toBe(502);
    expect(answer.headers['cache-status']).toContain('detail=origin_unreachable');
    expect((await proxy.fetch('/y')).status).toBe(502);
  });

  it('answers 504 when the origin stalls the body past the body timeout', async () => {
    const p = await rig.start(
      (_request, response) => {
        response.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '100' });
        response.write('partial');
      },
      { config: { origin: { bodyTimeout: 200 } } },
    );
    const answer = await p.fetch('/stall');
    expect(answer.status).toBe(504);
    expect(p.store.stats().entries).toBe(0);
  });

  it('never stores a truncated entry when the origin dies mid-body', async () => {
    const p = await rig.start((_request, response, count) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '1000' });
      if (count === 1) {
        response.write('x'.repeat(300));
        setTimeout(() => response.destroy(), 20);
      } else {
        response.end('y'.repeat(1000));
      }
    });
    const broken = await p.fetch('/cut');
    expect(broken.status).toBe(502);
    expect(p.store.stats().entries).toBe(0);
    const whole = await p.fetch('/cut');
    expect(whole.body).toBe('y'.repeat(1000));
    expect((await p.fetch('/cut')).headers['cache-status']).toContain('hit');
  });

  it('streams a response above the object size limit without storing it', async () => {
    const size = 3 * 1024 * 1024;
    const p = await rig.start(
      (_request, response) => {
        response.writeHead(200, { 'cache-control': 'max-age=60' });
        // Chunked, no Content-Length: the proxy only learns the size while reading.
        for (let i = 0; i < 3; i++) response.write(Buffer.alloc(1024 * 1024, 97 + i));
        response.end();
      },
      { config: { cache: { memory: { maxObjectSize: 1024 * 1024, maxSize: 64 * 1024 * 1024 } } } },
    );
    const first = await p.fetch('/big');
    expect(first.body.length).toBe(size);
    expect(first.body.slice(-1)).toBe('c');
    expect(first.headers['cache-status']).toContain('detail=too-large');
    await p.fetch('/big');
    expect(rig.origin.hits()).toBe(2);
    expect(p.store.stats().entries).toBe(0);
  });

  it('streams a response whose Content-Length is above the limit straight through', async () => {
    const p = await rig.start(
      (_request, response) => {
        response.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': String(2 * 1024 * 1024) });
        response.end(Buffer.alloc(2 * 1024 * 1024, 120));
      },
      { config: { cache: { memory: { maxObjectSize: 1024 * 1024, maxSize: 64 * 1024 * 1024 } } } },
    );
    const answer = await p.fetch('/declared');
    expect(answer.body.length).toBe(2 * 1024 * 1024);
    expect(answer.headers['content-length']).toBe(String(2 * 1024 * 1024));
    expect(p.store.stats().entries).toBe(0);
  });
});

describe('origin answers outside HTTP', () => {
  it('answers 502 to a status code above 599 (RFC 9110 §15), and stays up', async () => {
    const raw = await startRawOrigin((socket) => socket.end('HTTP/1.1 600 Odd\r\ncontent-length: 5\r\ncache-control: max-age=60\r\n\r\nhello'));
    try {
      const proxy = await rig.startProxyTo(raw.url);
      const first = await proxy.fetch('/odd');
      expect(first.status).toBe(502);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await proxy.fetch('/odd')).status).toBe(502);
      expect(proxy.store.stats().entries).toBe(0);
    } finally {
      await raw.close();
    }
  });
});
