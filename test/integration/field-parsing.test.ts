import { afterEach, describe, expect, it } from 'vitest';
import { TestClock } from '../helpers/clock.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

let origin: TestOrigin | undefined;
let proxy: TestProxy | undefined;
let clock: TestClock;

/** An origin answering every request with these headers (arrays become repeated field lines). */
async function setup(headers: Record<string, string | string[]>): Promise<TestProxy> {
  clock = new TestClock();
  origin = await startOrigin(
    (_request, response) => {
      response.writeHead(200, { 'content-type': 'text/plain', ...headers });
      response.end('body');
    },
    { clock: clock.now },
  );
  proxy = await startProxy(origin.url, { clock: clock.now });
  return proxy;
}

afterEach(async () => {
  await proxy?.close();
  await origin?.close();
  proxy = undefined;
  origin = undefined;
});

/** Two requests a few seconds apart: how many reached the origin. */
async function originHitsForTwo(p: TestProxy): Promise<number> {
  await p.fetch('/f');
  clock.advance(2);
  await p.fetch('/f');
  return origin!.hits();
}

describe('the Age field as it arrives from the origin (RFC 9111 §5.1)', () => {
  it.each([
    ['a single line listing 0 then an old age', '0, 7200'],
    ['two lines, 0 then an old age', ['0', '7200']],
    ['a negative value, which is ignored', '-7200'],
    ['a non-numeric value, which is ignored', 'old'],
  ])('keeps a response fresh for %s', async (_what, age) => {
    const p = await setup({ 'cache-control': 'max-age=3600', age });
    expect(await originHitsForTwo(p)).toBe(1);
  });

  it.each([
    ['a single line listing an old age first', '7200, 0'],
    ['two lines, the old age first', ['7200', '0']],
  ])('treats a response as stale for %s', async (_what, age) => {
    const p = await setup({ 'cache-control': 'max-age=3600', age });
    expect(await originHitsForTwo(p)).toBe(2);
  });
});

describe('Expires as it arrives from the origin (RFC 9111 §5.3, RFC 9110 §5.6.7)', () => {
  it('reuses a response whose Expires is a future date in the obsolete rfc850 form', async () => {
    const p = await setup({ expires: 'Thursday, 18-Aug-50 02:01:18 GMT' });
    expect(await originHitsForTwo(p)).toBe(1);
  });

  it.each(['Thu, 18 Aug 2050 02:01:18 UTC', 'Thu, 18 Aug 2050 2:01:18 GMT', 'Thu, 18-Aug-2050 02:01:18 GMT'])(
    'does not reuse a response whose Expires %j is not an HTTP-date, as it counts as already expired',
    async (expires) => {
      const p = await setup({ expires });
      expect(await originHitsForTwo(p)).toBe(2);
    },
  );
});

describe('CDN-Cache-Control as it arrives from the origin (RFC 9213 §2.1)', () => {
  it('governs storage over Cache-Control when it is a valid Structured Field', async () => {
    const p = await setup({ 'cdn-cache-control': 'max-age=3600', 'cache-control': 'no-store' });
    expect(await originHitsForTwo(p)).toBe(1);
  });

  it.each(['max-age=10000, &&&&&', 'max-age="10000"', 'max-age =10000'])('is ignored when it reads %j, so Cache-Control applies', async (value) => {
    const p = await setup({ 'cdn-cache-control': value, 'cache-control': 'no-store' });
    expect(await originHitsForTwo(p)).toBe(2);
  });
});
