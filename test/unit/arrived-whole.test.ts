import { Readable } from 'node:stream';
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { arrivedWhole } from '../../proxy/upstream/origin.js';
import { withFacts, cacheStatus } from '../../proxy/deliver.js';

/** A paused stream holding `chunks` in its buffer, ended or not. */
function holding(chunks: string[], ended: boolean): Readable {
  const stream = new Readable({ read() {} });
  for (const chunk of chunks) stream.push(Buffer.from(chunk));
  if (ended) stream.push(null);
  return stream;
}

async function rest(stream: Readable): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += (chunk as Buffer).toString();
  return text;
}

describe('arrivedWhole: a body whose declared bytes are all in hand', () => {
  it('answers the whole body as one buffer, and the stream ends', async () => {
    const stream = holding(['abc', 'def'], true);
    const whole = arrivedWhole(stream, '6');
    expect(whole?.toString()).toBe('abcdef');
    await once(stream, 'end');
  });

  it('leaves a body that is still arriving to be streamed, every byte intact', async () => {
    const stream = holding(['abc'], false);
    expect(arrivedWhole(stream, '6')).toBeUndefined();
    setTimeout(() => {
      stream.push(Buffer.from('def'));
      stream.push(null);
    }, 5);
    expect(await rest(stream)).toBe('abcdef');
  });

  it.each([
    ['no Content-Length', undefined],
    ['a Content-Length of zero', '0'],
    ['a Content-Length that is not a number', 'six'],
    ['a Content-Length list', '6, 6'],
  ])('streams a body with %s', async (_name, declared) => {
    const stream = holding(['abcdef'], true);
    expect(arrivedWhole(stream, declared)).toBeUndefined();
    expect(await rest(stream)).toBe('abcdef');
  });

  it('leaves a stream that is already flowing alone', async () => {
    const stream = holding(['abcdef'], true);
    const seen: string[] = [];
    stream.on('data', (chunk: Buffer) => seen.push(chunk.toString()));
    expect(arrivedWhole(stream, '6')).toBeUndefined();
    await once(stream, 'end');
    expect(seen.join('')).toBe('abcdef');
  });
});

describe('withFacts', () => {
  it('puts the given facts over the others and keeps the rest, as Cache-Status shows', () => {
    const base = { fwd: 'miss', detail: 'hit-for-miss' } as const;
    const merged = withFacts(base, { fwdStatus: 200 });
    expect(cacheStatus('lacquer', merged)).toBe('lacquer; fwd=miss; fwd-status=200; detail=hit-for-miss');
    expect(cacheStatus('lacquer', withFacts(merged, { detail: 'no-store', stored: false }))).toBe('lacquer; fwd=miss; fwd-status=200; detail=no-store');
    expect(cacheStatus('lacquer', withFacts({ hit: true, ttl: 5 }, { collapsed: true }))).toBe('lacquer; hit; collapsed; ttl=5');
    // The original is not changed.
    expect(base).toEqual({ fwd: 'miss', detail: 'hit-for-miss' });
  });
});
