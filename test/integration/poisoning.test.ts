import { Client } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startOrigin, type OriginHandler, type TestOrigin } from '../helpers/origin.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';

/**
 * Cache poisoning and deception: whatever a client sends, the stored
 * response for a key is the origin's answer to exactly that key, and a
 * response the origin marked private is never stored, whatever its URL
 * looks like.
 */

let origin: TestOrigin | undefined;
let proxy: TestProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  await origin?.close();
  proxy = undefined;
  origin = undefined;
});

async function setup(handler: OriginHandler): Promise<TestProxy> {
  origin = await startOrigin(handler);
  proxy = await startProxy(origin.url);
  return proxy;
}

/** An origin that echoes the path and body it was asked for, cacheable for a minute. */
const echo: OriginHandler = (request, response) => {
  response.writeHead(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' });
  response.end(`path=${request.url} body=${request.body.toString()}`);
};

/** A GET whose path is sent byte for byte, without the URL parser's dot-segment removal. */
async function rawPath(base: string, path: string): Promise<{ body: string; headers: Record<string, unknown> }> {
  const client = new Client(base);
  try {
    const response = await client.request({ path, method: 'GET' });
    return { body: await response.body.text(), headers: response.headers };
  } finally {
    await client.close();
  }
}

describe('cache key confusion', () => {
  it('never forwards the body of a GET, so a fat GET cannot change what is stored', async () => {
    const p = await setup(echo);
    const fat = await p.fetch('/item', { method: 'GET', body: 'evil=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(fat.body).toBe('path=/item body=');
    expect(origin!.requests[0]!.body.length).toBe(0);
    expect((await p.fetch('/item')).body).toBe('path=/item body=');
  });

  it('keys an encoded slash, a double slash, a dot segment and a change of case apart, each as the origin saw it', async () => {
    const p = await setup(echo);
    const paths = ['/a/b', '/a%2Fb', '//a/b', '/a/./b', '/a/c/../b', '/A/b'];
    for (const path of paths) expect((await rawPath(p.url, path)).body).toBe(`path=${path} body=`);
    // Each is a hit for its own answer, never another path's.
    for (const path of paths) {
      const again = await rawPath(p.url, path);
      expect(again.headers['cache-status']).toContain('hit');
      expect(again.body).toBe(`path=${path} body=`);
    }
    expect(origin!.hits()).toBe(paths.length);
  });

  it('treats the Host header case-insensitively and without its default port', async () => {
    const p = await setup(echo);
    await p.fetch('/h', { headers: { host: 'Example.COM' } });
    const same = await p.fetch('/h', { headers: { host: 'example.com:80' } });
    expect(same.headers['cache-status']).toContain('hit');
    const other = await p.fetch('/h', { headers: { host: 'example.org' } });
    expect(other.headers['cache-status']).not.toContain('hit');
    expect(origin!.hits()).toBe(2);
  });
});

describe('cache deception', () => {
  it('does not store a private answer for a path that looks like a static file', async () => {
    const p = await setup((_request, response, count) => {
      response.writeHead(200, { 'cache-control': 'private, max-age=600', 'content-type': 'text/html' });
      response.end(`account page ${count}`);
    });
    expect((await p.fetch('/account.php/logo.css')).body).toBe('account page 1');
    const second = await p.fetch('/account.php/logo.css');
    expect(second.body).toBe('account page 2');
    expect(p.store.stats().entries).toBe(0);
  });

  it('does not store an answer that says nothing about caching, whatever the extension', async () => {
    const p = await setup((_request, response, count) => {
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end(`profile ${count}`);
    });
    await p.fetch('/profile/avatar.png');
    expect((await p.fetch('/profile/avatar.png')).body).toBe('profile 2');
  });
});
