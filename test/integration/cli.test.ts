import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fetchText } from '../helpers/proxy.js';

/** The built command, as `npx lacquer` runs it (npm test builds before testing). */
const CLI = resolve('dist/proxy/cli.js');

function run(args: string[], env: Record<string, string> = {}) {
  const cwd = mkdtempSync(join(tmpdir(), 'lacquer-cli-'));
  return { cwd, result: spawnSync(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 15_000 }) };
}

describe('the lacquer command', () => {
  it('documents every flag and environment variable in --help', () => {
    const { result } = run(['--help']);
    expect(result.status).toBe(0);
    for (const word of ['--config', '--listen', '--origin', '--admin', 'LACQUER_CONFIG', 'LACQUER_LISTEN', 'LACQUER_ORIGIN', 'LACQUER_ADMIN']) {
      expect(result.stdout).toContain(word);
    }
  });

  it('exits with status 2 and names the field when the config file is bad', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'lacquer-cli-'));
    writeFileSync(join(cwd, 'bad.yaml'), 'cache:\n  memory:\n    maxSize: -1\n  colour: blue\n');
    const result = spawnSync(process.execPath, [CLI, '--config', 'bad.yaml'], { cwd, encoding: 'utf8', timeout: 15_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('cache.memory.maxSize');
    expect(result.stderr).toContain('cache.colour: unknown option');
  });

  it('exits with status 2 for a bad value in the environment', () => {
    const { result } = run([], { LACQUER_ORIGIN: 'gopher://old.example' });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('origin.url');
  });

  it('starts in front of the bundled example origin, serves hits, and drains on SIGTERM with status 0', async () => {
    const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
      cwd: mkdtempSync(join(tmpdir(), 'lacquer-cli-')),
      env: { ...process.env, LACQUER_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    while (!out.includes('admin:')) {
      if (child.exitCode !== null) throw new Error(`exited early: ${child.exitCode}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const proxyUrl = /listening on (http:\/\/\S+)/.exec(out)![1]!;
    const adminUrl = /admin:\s+(http:\/\/\S+)/.exec(out)![1]!;
    expect(out).toContain('bundled example origin');

    await fetchText(`${proxyUrl}/fresh`);
    const hit = await fetchText(`${proxyUrl}/fresh`);
    expect(hit.headers['cache-status']).toContain('hit');
    expect(hit.headers['x-origin-hits']).toBe('1');
    expect((await fetchText(`${adminUrl}/healthz`)).status).toBe(200);
    expect((await fetchText(`${adminUrl}/readyz`)).status).toBe(200);

    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).toBe(0);
  });
});
