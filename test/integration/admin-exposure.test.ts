import { Readable } from 'node:stream';
import { request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLacquer, type RunningLacquer } from '../../proxy/main.js';
import { wholeLacquerConfig } from '../helpers/lacquer.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { fetchText } from '../helpers/proxy.js';

/**
 * The admin routes live on the admin listener only. On the proxy port the
 * same paths are ordinary URLs of the origin: the proxy never answers them
 * itself, never reveals metrics or cache internals there, and a POST to
 * /purge there purges nothing. Admin request bodies are bounded.
 */

const TOKEN = 'admin-exposure-token-0123456789';
let origin: TestOrigin;
let lacquer: RunningLacquer;

beforeAll(async () => {
  origin = await startOrigin((request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': request.method === 'GET' ? 'max-age=60' : 'no-store' });
    response.end(`origin page for ${request.method} ${request.url}`);
  });
  const config = wholeLacquerConfig(origin.url);
  config.purge.token = TOKEN;
  config.purge.maxBodySize = 4096;
  lacquer = await startLacquer(config);
});

afterAll(async () => {
  await lacquer.close();
  await origin.close();
});

describe('admin routes on the proxy port', () => {
  it('are the origin’s own paths: /metrics, /explain, /healthz, /readyz and /purge are forwarded, never answered by Lacquer', async () => {
    for (const path of ['/metrics', '/explain?url=/cached', '/healthz', '/readyz']) {
      const answer = await fetchText(lacquer.proxyUrl + path);
      expect(answer.status, path).toBe(200);
      expect(answer.body, path).toBe(`origin page for GET ${path}`);
      expect(answer.body, path).not.toContain('lacquer_');
      expect(origin.requests.some((request) => request.url === path), path).toBe(true);
    }
    // The same paths on the admin listener are Lacquer's.
    const metrics = await fetchText(`${lacquer.adminUrl}/metrics`);
    expect(metrics.body).toContain('lacquer_requests_total');
  });

  it('purge nothing when POST /purge is sent to the proxy port, even with the token', async () => {
    await fetchText(`${lacquer.proxyUrl}/cached`);
    expect((await fetchText(`${lacquer.proxyUrl}/cached`)).headers['cache-status']).toMatch(/; hit(;|$)/);
    const before = origin.hits();
    const answer = await fetchText(`${lacquer.proxyUrl}/purge`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{"all":true}' });
    expect(answer.body).toBe('origin page for POST /purge');
    expect(origin.hits()).toBe(before + 1);
    expect(origin.requests.at(-1)!.body.toString()).toBe('{"all":true}');
    expect((await fetchText(`${lacquer.proxyUrl}/cached`)).headers['cache-status']).toMatch(/; hit(;|$)/);
    expect(origin.hits()).toBe(before + 1);
  });
});

describe('admin request bodies', () => {
  /** A body of `size` bytes sent chunked, without a Content-Length to refuse it by. */
  function chunked(size: number): Readable {
    let sent = 0;
    return new Readable({
      read() {
        if (sent >= size) return void this.push(null);
        const piece = Buffer.alloc(Math.min(16 * 1024, size - sent), 0x61);
        sent += piece.length;
        this.push(piece);
      },
    });
  }

  it('are refused with 413 past purge.maxBodySize, with or without a Content-Length', async () => {
    const headers = { authorization: `Bearer ${TOKEN}` };
    const declared = await fetchText(`${lacquer.adminUrl}/purge`, { method: 'POST', headers, body: `{"tags":["${'t'.repeat(8192)}"]}` });
    expect(declared.status).toBe(413);
    const streamed = await undiciRequest(`${lacquer.adminUrl}/purge`, { method: 'POST', headers, body: chunked(1024 * 1024) }).then(
      async (response) => ({ status: response.statusCode, body: await response.body.text() }),
      (error: unknown) => ({ status: 0, body: String(error) }),
    );
    expect(streamed.status).toBe(413);
    // Nothing was purged by either.
    expect((await fetchText(`${lacquer.proxyUrl}/cached`)).headers['cache-status']).toMatch(/; hit(;|$)/);
  });

  it('are not read at all from a client without the token, which gets 401', async () => {
    const answer = await undiciRequest(`${lacquer.adminUrl}/purge`, { method: 'POST', body: chunked(8 * 1024 * 1024) }).then(
      async (response) => ({ status: response.statusCode }),
      (error: unknown) => ({ status: 0, error: String(error) }),
    );
    expect(answer.status).toBe(401);
    expect((await fetchText(`${lacquer.adminUrl}/healthz`)).status).toBe(200);
  });
});
