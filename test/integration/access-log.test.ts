import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { respond, startOrigin, type TestOrigin } from '../helpers/origin.js';
import { fetchText } from '../helpers/proxy.js';

/** The built command (npm test builds before testing), so the lines checked are the ones an operator sees on stdout. */
const CLI = resolve('dist/proxy/cli.js');

let origin: TestOrigin | undefined;
let child: ChildProcessWithoutNullStreams | undefined;

afterEach(async () => {
  if (child !== undefined && child.exitCode === null) {
    const exited = new Promise((done) => child!.once('exit', done));
    child.kill('SIGTERM');
    await exited;
  }
  child = undefined;
  await origin?.close();
  origin = undefined;
});

async function startCli(level: string): Promise<{ proxyUrl: string; output: () => string }> {
  origin = await startOrigin(respond(200, { 'cache-control': 'max-age=60', 'content-type': 'text/plain' }, 'body'));
  child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--origin', origin.url], {
    cwd: mkdtempSync(join(tmpdir(), 'lacquer-log-')),
    env: { ...process.env, LACQUER_LOG_LEVEL: level },
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
  while (!/listening on http/.test(out)) {
    if (child.exitCode !== null) throw new Error(`exited early: ${out}`);
    await new Promise((done) => setTimeout(done, 20));
  }
  return { proxyUrl: /listening on (http:\/\/\S+)/.exec(out)![1]!, output: () => out };
}

function requestLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line['msg'] === 'request');
}

async function linesWhen(output: () => string, count: number): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 500 && requestLines(output()).length < count; i++) await new Promise((done) => setTimeout(done, 10));
  return requestLines(output());
}

describe('access log', () => {
  it('writes one structured line per request, with outcome and origin time, and no bodies, credentials or query strings', async () => {
    const { proxyUrl, output } = await startCli('info');
    await fetchText(`${proxyUrl}/item?token=query-secret`);
    await fetchText(`${proxyUrl}/item?token=query-secret`);
    await fetchText(`${proxyUrl}/form`, { method: 'POST', headers: { authorization: 'Bearer header-secret', cookie: 'sid=cookie-secret' }, body: 'body-secret' });

    const lines = await linesWhen(output, 3);
    expect(lines).toHaveLength(3);
    expect(lines.map(({ method, path, status, outcome }) => ({ method, path, status, outcome }))).toEqual([
      { method: 'GET', path: '/item', status: 200, outcome: 'miss' },
      { method: 'GET', path: '/item', status: 200, outcome: 'hit' },
      { method: 'POST', path: '/form', status: 200, outcome: 'pass' },
    ]);
    for (const line of lines) {
      expect(line['level']).toBe(30);
      expect(typeof line['durationMs']).toBe('number');
    }
    // The miss and the pass waited on the origin; the hit did not.
    expect(typeof lines[0]!['originMs']).toBe('number');
    expect(lines[1]!['originMs']).toBeNull();
    expect(typeof lines[2]!['originMs']).toBe('number');
    for (const secret of ['query-secret', 'header-secret', 'cookie-secret', 'body-secret']) expect(output()).not.toContain(secret);
  });

  it('writes no access lines when the level is above info', async () => {
    const { proxyUrl, output } = await startCli('warn');
    await fetchText(`${proxyUrl}/item`);
    await fetchText(`${proxyUrl}/item`);
    // The origin saw the miss, so the request was handled; give a line time to appear if one were written.
    expect(origin!.hits()).toBe(1);
    await new Promise((done) => setTimeout(done, 100));
    expect(requestLines(output())).toEqual([]);
  });
});
