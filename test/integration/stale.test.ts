import { describe, expect, it } from 'vitest';
import type { OriginHandler } from '../helpers/origin.js';
import { useRig } from '../helpers/rig.js';

const rig = useRig({ testClock: true });

async function originSaw(count: number): Promise<void> {
  while (rig.origin.hits() < count) await new Promise((resolve) => setTimeout(resolve, 5));
}

describe('stale-while-revalidate (RFC 5861 §3)', () => {
  it('serves stale at once and runs exactly one background refresh however many requests arrive', async () => {
    let release!: () => void;
    const refreshGate = new Promise<void>((resolve) => (release = resolve));
    const p = await rig.start(async (_request, response, count) => {
      if (count > 1) await refreshGate;
      response.writeHead(200, { 'cache-control': 'max-age=10, stale-while-revalidate=60' });
      response.end(`version ${count}`);
    });
    await p.fetch('/swr');
    rig.clock.advance(15);
    const staleAnswers = await Promise.all(Array.from({ length: 50 }, () => p.fetch('/swr')));
    // Every answer came back while the refresh was still held at the origin.
    expect(staleAnswers.every((r) => r.body === 'version 1' && String(r.headers['cache-status']).includes('stale-while-revalidate'))).toBe(true);
    await originSaw(2);
    release();
    // Once the refresh lands, the new version is served as a hit.
    let fresh = await p.fetch('/swr');
    while (fresh.body !== 'version 2') fresh = await p.fetch('/swr');
    expect(fresh.headers['cache-status']).toContain('hit');
    expect(rig.origin.hits()).toBe(2);
  });

  it('revalidates synchronously once the stale-while-revalidate window has passed', async () => {
    const p = await rig.start((_request, response, count) => {
      response.writeHead(200, { 'cache-control': 'max-age=10, stale-while-revalidate=20', etag: `"${count}"` });
      response.end(`v${count}`);
    });
    await p.fetch('/w');
    rig.clock.advance(31);
    const late = await p.fetch('/w');
    expect(late.body).toBe('v2');
    expect(late.headers['cache-status']).toContain('fwd=stale');
    expect(rig.origin.requests[1]!.headers['if-none-match']).toBe('"1"');
  });

  it('applies the configured stale-while-revalidate default to origins that send none', async () => {
    const p = await rig.start(
      (_request, response, count) => {
        response.writeHead(200, { 'cache-control': 'max-age=10' });
        response.end(`v${count}`);
      },
      { config: { cache: { staleWhileRevalidate: 30_000 } } },
    );
    await p.fetch('/g');
    rig.clock.advance(20);
    const stale = await p.fetch('/g');
    expect(stale.body).toBe('v1');
    expect(stale.headers['cache-status']).toContain('stale-while-revalidate');
  });
});

describe('stale-if-error (RFC 5861 §4)', () => {
  function failingAfterFirst(mode: 'status' | 'reset', cacheControl: string): OriginHandler {
    return (_request, response, count) => {
      if (count === 1) {
        response.writeHead(200, { 'cache-control': cacheControl });
        response.end('good');
      } else if (mode === 'status') {
        response.writeHead(503, { 'content-type': 'text/plain' });
        response.end('origin says 503');
      } else {
        response.destroy();
      }
    };
  }

  it.each(['status', 'reset'] as const)('serves the stale entry inside the window when the origin fails (%s)', async (mode) => {
    const p = await rig.start(failingAfterFirst(mode, 'max-age=10, stale-if-error=60'));
    await p.fetch('/e');
    rig.clock.advance(30);
    const answer = await p.fetch('/e');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('good');
    expect(answer.headers['cache-status']).toContain('stale-if-error');
  });

  it('answers 502 with a short plain body once the window has passed and the origin is unreachable', async () => {
    const p = await rig.start(failingAfterFirst('reset', 'max-age=10, stale-if-error=60'));
    await p.fetch('/e');
    rig.clock.advance(100);
    const answer = await p.fetch('/e');
    expect(answer.status).toBe(502);
    expect(answer.headers['content-type']).toContain('text/plain');
    expect(answer.body.length).toBeLessThan(200);
  });

  it('passes the origin 5xx through once the window has passed', async () => {
    const p = await rig.start(failingAfterFirst('status', 'max-age=10, stale-if-error=60'));
    await p.fetch('/e');
    rig.clock.advance(100);
    const answer = await p.fetch('/e');
    expect(answer.status).toBe(503);
    expect(answer.body).toBe('origin says 503');
  });

  it('applies the configured stale-if-error default (grace) to origins that send none', async () => {
    const p = await rig.start(failingAfterFirst('reset', 'max-age=10'), { config: { cache: { staleIfError: 300_000 } } });
    await p.fetch('/e');
    rig.clock.advance(200);
    const answer = await p.fetch('/e');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('good');
  });

  it('out of the box, serves stale for 10 s past expiry when the origin fails (grace), and not after', async () => {
    const p = await rig.start(failingAfterFirst('reset', 'max-age=10'));
    await p.fetch('/e');
    rig.clock.advance(18);
    const inGrace = await p.fetch('/e');
    expect(inGrace.status).toBe(200);
    expect(inGrace.body).toBe('good');
    expect(inGrace.headers['cache-status']).toContain('stale-if-error');
    rig.clock.advance(3);
    expect((await p.fetch('/e')).status).toBe(502);
  });

  // RFC 9111 §4.2.4: a cache must not serve stale when a directive forbids it; s-maxage implies proxy-revalidate (§5.2.2.10).
  it.each(['must-revalidate', 'proxy-revalidate', 'no-cache', 's-maxage=10'])('never serves stale on failure when the response says %s, whatever the default grace', async (directive) => {
    const p = await rig.start(failingAfterFirst('reset', `max-age=10, ${directive}`), { config: { cache: { staleIfError: 300_000 } } });
    await p.fetch('/e');
    rig.clock.advance(12);
    expect((await p.fetch('/e')).status).toBe(502);
  });

  it('does not store a response that is stale at once only to have something for the default grace', async () => {
    const p = await rig.start(failingAfterFirst('reset', 'max-age=0'), { config: { cache: { staleIfError: 300_000 } } });
    await p.fetch('/e');
    expect(p.store.stats().entries).toBe(0);
    expect((await p.fetch('/e')).status).toBe(502);
  });

  it('answers 504 when the origin does not send headers in time and nothing stale is allowed', async () => {
    const proxy = await rig.start(
      () => {
        // Never answers.
      },
      { config: { origin: { headersTimeout: 200 } } },
    );
    const answer = await proxy.fetch('/hang');
    expect(answer.status).toBe(504);
  });
});
