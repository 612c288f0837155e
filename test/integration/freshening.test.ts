import { describe, expect, it } from 'vitest';
import { useRig } from '../helpers/rig.js';

const rig = useRig({ testClock: true });

describe('freshening a stale entry with a 304 (RFC 9111 §4.3.4)', () => {
  it('answers a plain request with the stored body and keeps the stored ETag when the 304 names another tag', async () => {
    const p = await rig.start((request, response) => {
      if (request.headers['if-none-match'] === '"abcdef"') {
        response.writeHead(304, { etag: '"ghijkl"', 'cache-control': 'max-age=60', 'x-updated': 'yes' });
        response.end();
        return;
      }
      response.writeHead(200, { etag: '"abcdef"', 'cache-control': 'max-age=2', 'content-type': 'text/plain' });
      response.end('the stored body');
    });
    await p.fetch('/r');
    rig.clock.advance(3);

    const revalidated = await p.fetch('/r');
    expect(rig.origin.requests[1]!.headers['if-none-match']).toBe('"abcdef"');
    expect(revalidated.status).toBe(200);
    expect(revalidated.body).toBe('the stored body');
    expect(revalidated.headers['etag']).toBe('"abcdef"');
    expect(revalidated.headers['x-updated']).toBe('yes');

    // The 304's max-age=60 now governs the entry: the next request is a hit with the same tag.
    rig.clock.advance(10);
    const hit = await p.fetch('/r');
    expect(hit.headers['etag']).toBe('"abcdef"');
    expect(hit.body).toBe('the stored body');
    expect(rig.origin.hits()).toBe(2);
  });
});

describe('a 304 that does not select the stored entry (RFC 9111 §4.3.3, §4.3.4)', () => {
  it('is never passed to a client that did not ask conditionally: the full response is fetched again', async () => {
    const lastModified = 'Wed, 01 Jan 2020 00:00:00 GMT';
    const p = await rig.start((request, response, count) => {
      if (request.headers['if-modified-since'] !== undefined) {
        // An origin that names a representation our date-validated entry cannot be matched to.
        response.writeHead(304, { etag: '"other"', 'cache-control': 'max-age=60' });
        response.end();
        return;
      }
      response.writeHead(200, { 'last-modified': lastModified, 'cache-control': 'max-age=2', 'content-type': 'text/plain' });
      response.end(`full body ${count}`);
    });
    await p.fetch('/u');
    rig.clock.advance(3);

    const answer = await p.fetch('/u');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('full body 3');
    expect(rig.origin.requests[1]!.headers['if-modified-since']).toBe(lastModified);
    expect(rig.origin.requests[2]!.headers['if-modified-since']).toBeUndefined();
    expect(rig.origin.hits()).toBe(3);
  });
});
