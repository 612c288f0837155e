import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { useRig } from '../helpers/rig.js';
import { fetchText, startProxy, type TestProxy } from '../helpers/proxy.js';
import { request as undiciRequest } from 'undici';

const rig = useRig();

/** Holds every origin response until `release()`, so a test controls when the fill completes. */
function gate(): { wait: Promise<void>; release: () => void } {
  let release!: () => void;
  const wait = new Promise<void>((resolve) => (release = resolve));
  return { wait, release };
}

/**
 * Resolves once the proxy (listening at `proxyUrl`) has received `count`
 * requests for `path` since this was called, and they have had a moment
 * to reach the waiting list.
 */
function proxyArrivals(proxyUrl: string, path: string): { reached: (count: number) => Promise<void> } {
  const port = Number(new URL(proxyUrl).port);
  let arrived = 0;
  const onStart = (message: unknown): void => {
    const request = (message as { request: IncomingMessage }).request;
    if (request.socket.localPort === port && request.url === path) arrived++;
  };
  subscribe('http.server.request.start', onStart);
  return {
    reached: async (count) => {
      while (arrived < count) await new Promise((resolve) => setTimeout(resolve, 5));
      unsubscribe('http.server.request.start', onStart);
      await new Promise((resolve) => setTimeout(resolve, 20));
    },
  };
}

/** Resolves once the origin has seen `count` requests. */
async function originSaw(count: number): Promise<void> {
  while (rig.origin.hits() < count) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('coalescing (the waiting list)', () => {
  it('turns 100 concurrent requests for one uncached key into one origin request', async () => {
    const g = gate();
    const p = await rig.start(async (_request, response) => {
      await g.wait;
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end('shared body');
    });
    const responses = Array.from({ length: 100 }, () => p.fetch('/hot'));
    await originSaw(1);
    g.release();
    const all = await Promise.all(responses);
    expect(rig.origin.hits()).toBe(1);
    expect(all.every((r) => r.status === 200 && r.body === 'shared body')).toBe(true);
    expect(all.filter((r) => String(r.headers['cache-status']).includes('collapsed')).length).toBeGreaterThan(0);
  });

  it('sends waiters to the origin themselves when the response cannot be shared, and never hands them the Set-Cookie', async () => {
    const g = gate();
    const p = await rig.start(async (request, response, count) => {
      if (count === 1) await g.wait;
      response.writeHead(200, { 'cache-control': 'max-age=60', 'set-cookie': `session=${count}` });
      response.end(`for request ${count} ${request.headers['x-client'] ?? ''}`);
    });
    const leader = p.fetch('/login', { headers: { 'x-client': 'a' } });
    await originSaw(1);
    const waiters = Array.from({ length: 5 }, (_, i) => p.fetch('/login', { headers: { 'x-client': `w${i}` } }));
    // The waiters are parked on the leader's fill until it answers.
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(rig.origin.hits()).toBe(1);
    g.release();
    const [first, ...rest] = await Promise.all([leader, ...waiters]);
    expect(first!.headers['set-cookie']).toBe('session=1');
    expect(rig.origin.hits()).toBe(6);
    const cookies = rest.map((r) => r.headers['set-cookie']);
    expect(new Set(cookies).size).toBe(5);
    expect(cookies).not.toContain('session=1');
  });

  it('marks an uncacheable key hit-for-miss so later requests do not queue behind each other', async () => {
    const p = await rig.start(async (_request, response, count) => {
      // Every response is slow; if requests queued, two concurrent ones would take twice as long and reach the origin one at a time.
      await new Promise((resolve) => setTimeout(resolve, 100));
      response.writeHead(200, { 'cache-control': 'private' });
      response.end(`private ${count}`);
    });
    await p.fetch('/me');
    let answered = 0;
    const concurrent = [p.fetch('/me'), p.fetch('/me'), p.fetch('/me')].map((r) => r.finally(() => answered++));
    await originSaw(4);
    // All three reached the origin before any had been answered: nothing queued behind another.
    expect(answered).toBe(0);
    const answers = await Promise.all(concurrent);
    expect(answers.every((r) => String(r.headers['cache-status']).includes('hit-for-miss'))).toBe(true);
  });

  it('releases every waiter with a 502 when the origin fails, promptly and without a second origin request', async () => {
    const g = gate();
    const p = await rig.start(async (_request, response) => {
      await g.wait;
      response.destroy();
    });
    const arrivals = proxyArrivals(p.url, '/broken');
    const requests = Array.from({ length: 20 }, () => p.fetch('/broken'));
    await originSaw(1);
    // On a busy machine some requests reach the proxy only after the fill failed, and rightly start their own.
    await arrivals.reached(20);
    g.release();
    const all = await Promise.all(requests);
    expect(all.every((r) => r.status === 502)).toBe(true);
    expect(rig.origin.hits()).toBe(1);
  });

  it('keeps filling for the waiters when the leader client disconnects', async () => {
    const g = gate();
    const p = await rig.start(async (_request, response) => {
      await g.wait;
      response.writeHead(200, { 'cache-control': 'max-age=60' });
      response.end('survives');
    });
    const controller = new AbortController();
    const leader = undiciRequest(`${p.url}/leader-gone`, { signal: controller.signal }).catch((error: unknown) => error);
    await originSaw(1);
    const waiters = Array.from({ length: 10 }, () => fetchText(`${p.url}/leader-gone`));
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    await leader;
    g.release();
    const all = await Promise.all(waiters);
    expect(all.every((r) => r.status === 200 && r.body === 'survives')).toBe(true);
    expect(rig.origin.hits()).toBe(1);
    expect((await p.fetch('/leader-gone')).headers['cache-status']).toContain('hit');
  });

  it('gives a waiter whose Vary values differ its own origin request', async () => {
    const g = gate();
    const p = await rig.start(async (request, response, count) => {
      if (count === 1) await g.wait;
      response.writeHead(200, { 'cache-control': 'max-age=60', vary: 'accept-language' });
      response.end(`lang=${request.headers['accept-language']}`);
    });
    const en = p.fetch('/greet', { headers: { 'accept-language': 'en' } });
    await originSaw(1);
    const fr = p.fetch('/greet', { headers: { 'accept-language': 'fr' } });
    await new Promise((resolve) => setTimeout(resolve, 20));
    g.release();
    expect((await en).body).toBe('lang=en');
    expect((await fr).body).toBe('lang=fr');
    expect(rig.origin.hits()).toBe(2);
  });
});
