import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { request as undiciRequest } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { startLacquerProcess, type LacquerProcess } from '../helpers/child.js';
import { startOrigin, type OriginHandler, type TestOrigin } from '../helpers/origin.js';
import { fetchText } from '../helpers/proxy.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * Signals to a real `lacquer` process: SIGTERM drains in-flight requests
 * within shutdown.drainTimeout and exits 0; SIGHUP reloads the config file,
 * keeps the cache, and rejects a bad file while the running config stays.
 */

const root = tempDir('lacquer-signals-');
let files = 0;
const running: LacquerProcess[] = [];
const origins: TestOrigin[] = [];

afterEach(async () => {
  const stopped = running.splice(0);
  for (const lacquer of stopped) await lacquer.stop('SIGKILL');
  // The CLI logs an unhandled rejection and keeps serving; here it is a failure.
  for (const lacquer of stopped) expect(lacquer.output()).not.toContain('unhandled rejection');
  for (const origin of origins.splice(0)) await origin.close();
});

function gate(): { wait: Promise<void>; release: () => void } {
  let release!: () => void;
  const wait = new Promise<void>((done) => (release = done));
  return { wait, release };
}

async function origin(handler: OriginHandler): Promise<TestOrigin> {
  const started = await startOrigin(handler);
  origins.push(started);
  return started;
}

/** A config file with the disk tier off; `yaml` is appended. */
function configFile(yaml: string, file = join(root, `config-${files++}.yaml`)): string {
  writeFileSync(file, `cache:\n  disk:\n    enabled: false\n${yaml}`);
  return file;
}

async function start(originUrl: string, file: string): Promise<LacquerProcess> {
  // LACQUER_LOG_LEVEL is cleared so the file's log.level is the one in force (and can be reloaded).
  const lacquer = await startLacquerProcess(['--origin', originUrl, '--config', file], { LACQUER_LOG_LEVEL: '' }, root);
  running.push(lacquer);
  return lacquer;
}

function refusesConnections(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((done) => {
    const socket = connect(Number(port), hostname);
    socket.once('connect', () => {
      socket.destroy();
      done(false);
    });
    socket.once('error', () => done(true));
  });
}

function purge(adminUrl: string, token: string, path: string) {
  return fetchText(`${adminUrl}/purge`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ urls: [path] }) });
}

describe('SIGTERM', () => {
  it('stops accepting, lets an in-flight request finish with its whole body, then exits 0', async () => {
    const g = gate();
    const o = await origin(async (request, response) => {
      if (request.url === '/slow') await g.wait;
      response.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' });
      response.end(`whole answer for ${request.url}`);
    });
    const lacquer = await start(o.url, configFile('shutdown:\n  drainTimeout: 60s\n'));
    const inFlight = fetchText(`${lacquer.url}/slow`);
    await expect.poll(() => o.hits('/slow'), { timeout: 10_000 }).toBe(1);

    const exited = lacquer.stop('SIGTERM');
    await lacquer.waitFor('SIGTERM received, draining');
    await expect.poll(() => refusesConnections(lacquer.url), { timeout: 10_000 }).toBe(true);
    expect(lacquer.child.exitCode).toBeNull();

    g.release();
    const answer = await inFlight;
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('whole answer for /slow');
    expect(await exited).toBe(0);
    expect(lacquer.output()).toMatch(/drained in \d+ ms, exiting/);
  });

  it('closes what is still in flight at shutdown.drainTimeout and exits 0, well before the origin timeout', async () => {
    // The origin never answers; only the drain deadline (1 s) can end the request before origin.headersTimeout (60 s).
    const o = await origin(() => {});
    const lacquer = await start(o.url, configFile('shutdown:\n  drainTimeout: 1s\norigin:\n  headersTimeout: 60s\n'));
    const inFlight = undiciRequest(`${lacquer.url}/never`).then(
      (response) => ({ status: response.statusCode }),
      (error: unknown) => ({ error: error as Error }),
    );
    await expect.poll(() => o.hits('/never'), { timeout: 10_000 }).toBe(1);

    const signalled = Date.now();
    const code = await lacquer.stop('SIGTERM');
    const elapsed = Date.now() - signalled;
    expect(code).toBe(0);
    expect(elapsed).toBeLessThan(30_000);
    const outcome = await inFlight;
    // The client sees its connection closed, never a made-up answer.
    expect(outcome).toHaveProperty('error');
    expect(lacquer.output()).toMatch(/drain deadline reached after \d+ ms; closed 1 connection\(s\) still in flight, exiting/);
  });
});

describe('SIGHUP', () => {
  it('reloads TTL defaults, the purge token and the log level, keeps the cache, and reports fields that need a restart', async () => {
    const o = await origin((request, response) => {
      if (request.url === '/cached') response.writeHead(200, { 'cache-control': 'max-age=600' });
      else response.writeHead(200, {});
      response.end(`body of ${request.url}`);
    });
    const file = configFile('purge:\n  token: first-token-0123456789\nlog:\n  level: info\n');
    const lacquer = await start(o.url, file);

    await fetchText(`${lacquer.url}/cached`);
    expect((await fetchText(`${lacquer.url}/cached`)).headers['cache-status']).toMatch(/; hit(;|$)/);
    await fetchText(`${lacquer.url}/plain`);
    await fetchText(`${lacquer.url}/plain`);
    expect(o.hits('/plain')).toBe(2); // no freshness information and defaultTtl 0: not stored
    expect((await purge(lacquer.adminUrl, 'first-token-0123456789', '/nothing')).status).toBe(200);
    await lacquer.waitFor('purge url hard', 5_000);
    const purgeLinesBefore = lacquer.output().split('purge url hard').length;

    writeFileSync(file, 'cache:\n  disk:\n    enabled: false\n  defaultTtl: 60s\n  memory:\n    maxSize: 128MiB\npurge:\n  token: second-token-0123456789\nlog:\n  level: warn\n');
    lacquer.child.kill('SIGHUP');
    await lacquer.waitFor('config reloaded:', 10_000);
    const out = lacquer.output();
    expect(out).toContain('config reloaded: cache.defaultTtl, purge.token, log.level');
    expect(out).toContain('cache.memory.maxSize changed but takes effect only after a restart');

    // The cache survived the reload.
    const kept = await fetchText(`${lacquer.url}/cached`);
    expect(kept.headers['cache-status']).toMatch(/; hit(;|$)/);
    expect(o.hits('/cached')).toBe(1);
    // The new default TTL applies to responses stored from now on (on a new path: /plain is marked hit-for-miss for a while).
    await fetchText(`${lacquer.url}/plain-2`);
    expect((await fetchText(`${lacquer.url}/plain-2`)).headers['cache-status']).toMatch(/; hit(;|$)/);
    expect(o.hits('/plain-2')).toBe(1);
    // Only the new token purges.
    expect((await purge(lacquer.adminUrl, 'first-token-0123456789', '/nothing')).status).toBe(403);
    expect((await purge(lacquer.adminUrl, 'second-token-0123456789', '/nothing')).status).toBe(200);
    // At level warn the purge is no longer logged.
    expect(lacquer.output().split('purge url hard').length).toBe(purgeLinesBefore);
    expect(lacquer.child.exitCode).toBeNull();
  });

  it('rejects a config that does not validate, naming the field, and keeps running with the old one', async () => {
    const o = await origin((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600' });
      response.end(`body of ${request.url}`);
    });
    const file = configFile('purge:\n  token: first-token-0123456789\n');
    const lacquer = await start(o.url, file);
    await fetchText(`${lacquer.url}/cached`);

    writeFileSync(file, 'cache:\n  disk:\n    enabled: false\n  defaultTtl: forever\npurge:\n  token: second-token-0123456789\n');
    lacquer.child.kill('SIGHUP');
    await lacquer.waitFor('the running config stays', 10_000);
    expect(lacquer.output()).toMatch(/config reload rejected: cache\.defaultTtl: .*"forever"/);
    expect(lacquer.output()).not.toContain('config reloaded');

    expect((await purge(lacquer.adminUrl, 'second-token-0123456789', '/nothing')).status).toBe(403);
    expect((await purge(lacquer.adminUrl, 'first-token-0123456789', '/nothing')).status).toBe(200);
    expect((await fetchText(`${lacquer.url}/cached`)).headers['cache-status']).toMatch(/; hit(;|$)/);
    expect(o.hits()).toBe(1);
    expect(lacquer.child.exitCode).toBeNull();

    // A broken YAML file is rejected the same way.
    writeFileSync(file, 'cache: [unclosed\n');
    lacquer.child.kill('SIGHUP');
    await expect.poll(() => lacquer.output().split('the running config stays').length, { timeout: 10_000 }).toBe(3);
    expect(lacquer.output()).toMatch(/config reload rejected: .*YAML/);
    expect((await purge(lacquer.adminUrl, 'first-token-0123456789', '/nothing')).status).toBe(200);
  });
});
