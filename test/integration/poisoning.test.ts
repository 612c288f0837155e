import { Client } from 'undici';
import { describe, expect, it } from 'vitest';
import { nodeFetch } from '../helpers/node-fetch.js';
import type { OriginHandler } from '../helpers/origin.js';
import { useRig } from '../helpers/rig.js';

/**
 * Cache poisoning and deception: whatever a client sends, the stored
 * response for a key is the origin's answer to exactly that key, and a
 * response the origin marked private is never stored, whatever its URL
 * looks like.
 */

const rig = useRig();
const setup = (handler: OriginHandler) => rig.start(handler);

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
    expect(rig.origin.requests[0]!.body.length).toBe(0);
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
    expect(rig.origin.hits()).toBe(paths.length);
  });

  it('treats the Host header case-insensitively and without its default port', async () => {
    const p = await setup(echo);
    await p.fetch('/h', { headers: { host: 'Example.COM' } });
    const same = await p.fetch('/h', { headers: { host: 'example.com:80' } });
    expect(same.headers['cache-status']).toContain('hit');
    const other = await p.fetch('/h', { headers: { host: 'example.org' } });
    expect(other.headers['cache-status']).not.toContain('hit');
    expect(rig.origin.hits()).toBe(2);
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

describe('headers that would make the key or the variant differ from what the origin saw', () => {
  it('refuses a Host that is not a host name and port, so no path can be stored under another path (RFC 9110 §7.2)', async () => {
    const p = await setup(echo);
    const host = new URL(p.url).host;
    for (const bad of [`${host}/js`, `${host}?x`, `${host}#x`, `user@${host}`, `${host} x`]) {
      expect((await nodeFetch(`${p.url}/app.js`, { headers: { host: bad } })).status, bad).toBe(400);
    }
    expect((await nodeFetch(`${p.url}/js/app.js`, { headers: { host } })).body).toBe('path=/js/app.js body=');
    expect(rig.origin.hits()).toBe(1);
    expect((await nodeFetch(`${p.url}/x`, { headers: { host: '[::1]:8080' } })).status).toBe(200);
  });

  it('keys variants on the request fields the origin received: a field named in Connection is not one of them', async () => {
    const p = await setup((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Language' });
      response.end(`lang=${request.headers['accept-language'] ?? 'default'}`);
    });
    const attack = await nodeFetch(`${p.url}/page`, { headers: { 'accept-language': 'fr', connection: 'keep-alive, accept-language' } });
    expect(attack.body).toBe('lang=default');
    expect((await nodeFetch(`${p.url}/page`, { headers: { 'accept-language': 'fr' } })).body).toBe('lang=fr');
  });

  it('sends the Accept-Encoding bucket, not the client list, on every request whose answer may be stored', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const p = await setup(async (request, response, count) => {
      if (count === 1) await held;
      const accepted = String(request.headers['accept-encoding'] ?? '');
      const coding = accepted.includes('zstd') ? 'zstd' : accepted.includes('br') ? 'br' : accepted.includes('gzip') ? 'gzip' : undefined;
      response.writeHead(200, { vary: 'Accept-Encoding', 'cache-control': 'max-age=60', ...(coding === undefined ? {} : { 'content-encoding': coding }) });
      response.end(`body-${coding ?? 'identity'}`);
    });
    // A plain request leads the fill; a browser with another encoding list cannot share it and asks the origin itself.
    const leader = p.fetch('/app.js');
    while (rig.origin.hits() < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    const chrome = p.fetch('/app.js', { headers: { 'accept-encoding': 'gzip, deflate, br, zstd' } });
    await new Promise((resolve) => setTimeout(resolve, 50));
    release();
    await Promise.all([leader, chrome]);
    const safari = await p.fetch('/app.js', { headers: { 'accept-encoding': 'gzip, deflate, br' } });
    expect(safari.headers['content-encoding']).toBe('br');
    expect(rig.origin.requests.map((r) => r.headers['accept-encoding'] ?? '')).not.toContain('gzip, deflate, br, zstd');
  });
});
