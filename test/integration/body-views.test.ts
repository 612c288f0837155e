import { describe, expect, it } from 'vitest';
import { useRig } from '../helpers/rig.js';

const rig = useRig();

function bodyFor(index: number): string {
  return `body ${index} `.repeat(40);
}

/**
 * A small body is stored as a view of the socket read it came in
 * (memory.ts, ownBuffer): that holds only if nothing ever writes into a read
 * once it is handed over, which these answers, read over kept-alive
 * origin connections, check (on each Node version CI runs).
 */
describe('bodies kept as views of the origin reads', () => {
  it('still hold their own bytes after many later reads on the same origin connection', async () => {
    const p = await rig.start((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'text/plain' });
      response.end(bodyFor(Number(request.url.slice(3))));
    });
    const count = 200;
    for (let i = 0; i < count; i++) expect((await p.fetch(`/s/${i}`)).body).toBe(bodyFor(i));

    // The premise: at least some stored bodies are views of a larger read, not copies.
    let views = 0;
    const memory = 'memory' in p.store ? p.store.memory : p.store;
    for (const key of [...memory.keys()]) {
      const body = memory.peek(key)?.[0]?.body;
      if (Buffer.isBuffer(body) && body.buffer.byteLength > body.length) views++;
    }
    expect(views).toBeGreaterThan(0);

    for (let i = 0; i < count; i++) {
      const answer = await p.fetch(`/s/${i}`);
      expect(answer.headers['cache-status']).toMatch(/hit/);
      expect(answer.body).toBe(bodyFor(i));
    }
    expect(rig.origin.hits()).toBe(count);
  });
});
