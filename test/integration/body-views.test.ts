import { describe, expect, it } from 'vitest';
import { useRig } from '../helpers/rig.js';

const rig = useRig();

function bodyFor(index: number): string {
  return `body ${index} `.repeat(40);
}

/**
 * A small body arrives as a view of the socket read it came in and is
 * stored as a copy in a slab shared with other bodies (memory.ts,
 * slabs.ts). These answers, read over kept-alive origin connections whose
 * reads are reused, check that every stored body keeps its own bytes.
 */
describe('bodies kept in shared slabs', () => {
  it('still hold their own bytes after many later reads on the same origin connection', async () => {
    const p = await rig.start((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' });
      response.end(bodyFor(Number(request.url.slice(3))));
    });
    const count = 200;
    for (let i = 0; i < count; i++) expect((await p.fetch(`/s/${i}`)).body).toBe(bodyFor(i));

    // The premise: stored bodies share buffers (slabs) rather than each holding one of its own.
    const memory = 'memory' in p.store ? p.store.memory : p.store;
    const buffers = new Set<ArrayBufferLike>();
    for (const key of [...memory.keys()]) {
      const body = memory.peek(key)?.[0]?.body;
      if (Buffer.isBuffer(body)) buffers.add(body.buffer);
    }
    expect(buffers.size).toBeGreaterThan(0);
    expect(buffers.size).toBeLessThan(count / 10);

    for (let i = 0; i < count; i++) {
      const answer = await p.fetch(`/s/${i}`);
      expect(answer.headers['cache-status']).toMatch(/hit/);
      expect(answer.body).toBe(bodyFor(i));
    }
    expect(rig.origin.hits()).toBe(count);
  });
});
