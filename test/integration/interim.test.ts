import { describe, expect, it } from 'vitest';
import { request } from 'undici';
import { useRig } from '../helpers/rig.js';

const rig = useRig();

/** A GET through the proxy that records the interim responses it receives. */
async function getWithInterims(url: string) {
  const interims: { status: number; headers: Record<string, unknown> }[] = [];
  const response = await request(url, { onInfo: ({ statusCode, headers }) => interims.push({ status: statusCode, headers }) });
  const body = await response.body.text();
  return { status: response.statusCode, headers: response.headers, body, interims };
}

describe('interim responses (RFC 9110 §15.2, RFC 9111 §3)', () => {
  it('passes 103 Early Hints to the client, then stores only the final response', async () => {
    const proxy = await rig.start((_request, response) => {
      response.writeEarlyHints({ link: '</styles.css>; rel=preload; as=style', 'x-hint': 'early' });
      response.writeHead(200, { 'cache-control': 'max-age=100', 'content-type': 'text/plain' });
      response.end('final');
    });
    const origin = rig.origin;

    const first = await getWithInterims(`${proxy.url}/page`);
    expect(first.interims).toHaveLength(1);
    expect(first.interims[0]!.status).toBe(103);
    expect(first.interims[0]!.headers['link']).toBe('</styles.css>; rel=preload; as=style');
    expect(first.interims[0]!.headers['x-hint']).toBe('early');
    expect(first.status).toBe(200);
    expect(first.body).toBe('final');

    const second = await getWithInterims(`${proxy.url}/page`);
    expect(second.body).toBe('final');
    expect(second.interims).toHaveLength(0);
    expect(second.headers['link']).toBeUndefined();
    expect(second.headers['x-hint']).toBeUndefined();
    expect(origin.hits()).toBe(1);
  });

  it('passes 102 Processing to the client', async () => {
    const proxy = await rig.start((_request, response) => {
      response.writeProcessing();
      response.writeHead(200, { 'cache-control': 'no-store' });
      response.end('done');
    });
    const origin = rig.origin;
    const answer = await getWithInterims(`${proxy.url}/slow`);
    expect(answer.interims.map((interim) => interim.status)).toEqual([102]);
    expect(answer.body).toBe('done');
  });
});
