import { describe, expect, it } from 'vitest';
import { useRig } from '../helpers/rig.js';

const rig = useRig();

/**
 * Uncacheable answers on the way through: a small one usually arrives whole
 * with its headers and is handed on as one buffer, a larger or slower one is
 * streamed. Either way the client must get what the origin sent.
 */
describe('uncacheable answers passed through', () => {
  it.each([
    ['no Content-Type', undefined],
    ['a Content-Type that is not a media type', 'nonsense'],
    ['a Content-Type list', ['text/plain', 'text/html']],
    ['a Content-Type list whose first member has parameters', ['text/plain; charset=utf-8', 'text/html']],
  ])('keeps %s as the origin sent it, for the first request and for later ones (hit-for-miss)', async (_name, contentType) => {
    const p = await rig.start((_request, response) => {
      if (contentType !== undefined) response.setHeader('content-type', contentType);
      response.writeHead(200, { 'cache-control': 'no-store', 'content-length': '10' });
      response.end('small body');
    });
    for (let i = 0; i < 3; i++) {
      const answer = await p.fetch('/plain');
      expect(answer.status).toBe(200);
      expect(answer.body).toBe('small body');
      expect(answer.headers['content-type']).toEqual(contentType);
      expect(answer.headers['content-length']).toBe('10');
    }
    expect(rig.origin.hits('/plain')).toBe(3);
  });

  it('passes on a small answer with a media type whole, with the origin’s own fields', async () => {
    const p = await rig.start((_request, response) => {
      response.writeHead(200, { 'cache-control': 'no-store', 'content-type': 'text/plain; charset=utf-8', 'content-length': '200', 'x-origin': 'yes' });
      response.end('é'.repeat(100));
    });
    for (let i = 0; i < 3; i++) {
      const answer = await p.fetch('/typed');
      expect(answer.body).toBe('é'.repeat(100));
      expect(answer.headers['content-type']).toBe('text/plain; charset=utf-8');
      expect(answer.headers['content-length']).toBe('200');
      expect(answer.headers['x-origin']).toBe('yes');
      expect(answer.headers['via']).toBe('1.1 lacquer');
      expect(answer.headers['cache-status']).toContain('fwd-status=200');
    }
  });

  it('streams an answer whose body is still arriving when its headers are passed on', async () => {
    const p = await rig.start((_request, response) => {
      response.writeHead(200, { 'cache-control': 'no-store', 'content-type': 'text/plain', 'content-length': '2000' });
      response.flushHeaders();
      response.write('a'.repeat(1000));
      // The rest comes later: the proxy cannot have it all when the headers arrive.
      setTimeout(() => response.end('b'.repeat(1000)), 50);
    });
    for (let i = 0; i < 2; i++) {
      const answer = await p.fetch('/slow');
      expect(answer.body).toBe('a'.repeat(1000) + 'b'.repeat(1000));
      expect(answer.headers['content-length']).toBe('2000');
    }
  });
});
