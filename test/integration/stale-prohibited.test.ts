import { afterEach, describe, expect, it } from 'vitest';
import { TestClock } from '../helpers/clock.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

let origin: TestOrigin | undefined;
let proxy: TestProxy | undefined;
let clock: TestClock;

afterEach(async () => {
  await proxy?.close();
  await origin?.close();
  proxy = undefined;
  origin = undefined;
});

/**
 * An origin that answers once and then closes the connection on every
 * later request, behind a proxy configured to serve stale on errors for
 * five minutes (grace), so only the response's own directives can stop it.
 */
async function closingAfterFirst(cacheControl: string): Promise<TestProxy> {
  clock = new TestClock();
  origin = await startOrigin(
    (_request, response, count) => {
      if (count > 1) {
        response.destroy();
        return;
      }
      response.writeHead(200, { 'cache-control': cacheControl, 'content-type': 'text/plain' });
      response.end('stored');
    },
    { clock: clock.now },
  );
  proxy = await startProxy(origin.url, { clock: clock.now, config: { cache: { staleIfError: 300_000 } } });
  return proxy;
}

describe('stale responses the origin prohibited, when the origin closes the connection (RFC 9111 §4.2.4)', () => {
  it('serves a plain stale entry when stale use on error is configured (the case the others differ from)', async () => {
    const p = await closingAfterFirst('max-age=2');
    await p.fetch('/s');
    clock.advance(10);
    const answer = await p.fetch('/s');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('stored');
  });

  it.each([
    ['must-revalidate', 'max-age=2, must-revalidate'],
    ['proxy-revalidate (RFC 9111 §5.2.2.8)', 'max-age=2, proxy-revalidate'],
    ['no-cache (RFC 9111 §5.2.2.4)', 'max-age=2, no-cache'],
    ['s-maxage (RFC 9111 §5.2.2.10)', 'max-age=2, s-maxage=2'],
  ])('never serves it stale under %s: the client gets 502', async (_what, cacheControl) => {
    const p = await closingAfterFirst(cacheControl);
    await p.fetch('/s');
    clock.advance(10);
    const answer = await p.fetch('/s');
    expect(answer.status).toBe(502);
    expect(answer.body).not.toBe('stored');
    expect(origin!.hits()).toBe(2);
  });
});
