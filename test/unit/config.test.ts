import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors.js';
import { loadConfig } from '../../config/load.js';
import { defaults } from '../../config/schema.js';
import { parseDuration, parseSize } from '../../config/units.js';

function dirWith(yaml?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'lacquer-config-'));
  if (yaml !== undefined) writeFileSync(join(dir, 'proxy.config.yaml'), yaml);
  return dir;
}

function issuesFor(yaml: string, argv: string[] = []): { path: string; message: string }[] {
  try {
    loadConfig({ cwd: dirWith(yaml), argv, env: {} });
  } catch (error) {
    if (error instanceof ConfigError) return [...error.issues];
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('units', () => {
  it('reads sizes in bytes, decimal and binary units', () => {
    expect(parseSize(512)).toBe(512);
    expect(parseSize('64KiB')).toBe(65_536);
    expect(parseSize('256 MiB')).toBe(256 * 2 ** 20);
    expect(parseSize('1.5GB')).toBe(1.5e9);
    expect(parseSize('10gib')).toBe(10 * 2 ** 30);
  });

  it('reads durations, a bare number being seconds', () => {
    expect(parseDuration(30)).toBe(30_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('1d')).toBe(86_400_000);
  });

  it.each(['lots', '-1', '10 parsecs', '', 'NaN'])('rejects %j as a size', (input) => {
    expect(() => parseSize(input)).toThrow(/size/);
  });

  it('rejects negative and infinite numbers', () => {
    expect(() => parseSize(-5)).toThrow(/negative/);
    expect(() => parseDuration(Infinity)).toThrow(/duration/);
  });
});

describe('loading the config', () => {
  it('gives the documented defaults with no file at all', () => {
    const { config, file } = loadConfig({ cwd: dirWith(), env: {} });
    expect(file).toBeNull();
    expect(config).toEqual(defaults());
    expect(config.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(config.cache.memory.maxSize).toBe(256 * 2 ** 20);
    expect(config.cache.hitForMissTtl).toBe(30_000);
  });

  it('ships a proxy.config.yaml that lists exactly the defaults', () => {
    const { config, file } = loadConfig({ cwd: process.cwd(), env: {} });
    expect(file).toMatch(/proxy\.config\.yaml$/);
    expect(config).toEqual(defaults());
  });

  it('applies the file, then the environment, then flags', () => {
    const cwd = dirWith('listen: 127.0.0.1:1000\nadmin: 127.0.0.1:2000\norigin:\n  url: http://file.example\n');
    const env = { LACQUER_LISTEN: '127.0.0.1:1001', LACQUER_ORIGIN: 'http://env.example', LACQUER_LOG_LEVEL: 'warn' };
    const { config } = loadConfig({ cwd, env, argv: ['--origin', 'http://flag.example:8000/api'] });
    expect(config.listen.port).toBe(1001);
    expect(config.admin.port).toBe(2000);
    expect(config.origin.url).toBe('http://flag.example:8000/api');
    expect(config.log.level).toBe('warn');
  });

  it('reads the file named by --config or LACQUER_CONFIG', () => {
    const dir = dirWith();
    writeFileSync(join(dir, 'other.yaml'), 'cache:\n  maxVariants: 3\n');
    expect(loadConfig({ cwd: dir, env: { LACQUER_CONFIG: 'other.yaml' } }).config.cache.maxVariants).toBe(3);
    expect(loadConfig({ cwd: dir, env: {}, argv: ['-c', join(dir, 'other.yaml')] }).config.cache.maxVariants).toBe(3);
  });

  it('lower-cases header names and converts sizes and durations', () => {
    const { config } = loadConfig({
      cwd: dirWith('key:\n  headers: [X-Tenant]\ncache:\n  defaultTtl: 2m\n  memory: { maxSize: 1GiB, maxObjectSize: 1MiB }\n'),
      env: {},
    });
    expect(config.key.headers).toEqual(['x-tenant']);
    expect(config.cache.defaultTtl).toBe(120_000);
    expect(config.cache.memory.maxObjectSize).toBe(2 ** 20);
  });

  it('freezes the result, deeply', () => {
    const { config } = loadConfig({ cwd: dirWith(), env: {} });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.cache.memory)).toBe(true);
    expect(Object.isFrozen(config.request.stripHeaders)).toBe(true);
  });
});

describe('bad configs name the field and the reason', () => {
  it('rejects an unknown key', () => {
    expect(issuesFor('cache:\n  maxSise: 5\n')).toEqual([{ path: 'cache.maxSise', message: 'unknown option' }]);
  });

  it('rejects a wrong type', () => {
    expect(issuesFor('cache:\n  maxVariants: many\n')[0]!.path).toBe('cache.maxVariants');
  });

  it('rejects an origin that is not an http(s) URL', () => {
    const [issue] = issuesFor('origin:\n  url: ftp://files.example\n');
    expect(issue).toEqual({ path: 'origin.url', message: expect.stringContaining('http: or https:') });
    expect(issuesFor('origin:\n  url: not a url\n')[0]!.path).toBe('origin.url');
  });

  it('rejects a negative size', () => {
    const [issue] = issuesFor('cache:\n  memory:\n    maxSize: -5\n');
    expect(issue).toEqual({ path: 'cache.memory.maxSize', message: expect.stringContaining('negative') });
  });

  it('rejects an object limit larger than the memory tier', () => {
    expect(issuesFor('cache:\n  memory:\n    maxSize: 1MiB\n    maxObjectSize: 2MiB\n')[0]!.path).toBe('cache.memory.maxObjectSize');
  });

  it('rejects a bad listen address from a flag, naming the field it sets', () => {
    expect(issuesFor('', ['--listen', 'localhost'])[0]!.path).toBe('listen');
  });

  it('rejects an unknown flag', () => {
    expect(issuesFor('', ['--orgin', 'http://x'])[0]!.path).toBe('--orgin');
  });

  it('reports a YAML syntax error with its line', () => {
    const [issue] = issuesFor('cache:\n  name: [unclosed\n');
    expect(issue!.path).toMatch(/proxy\.config\.yaml:\d+:\d+$/);
  });

  it('reports a named config file that does not exist', () => {
    expect(() => loadConfig({ cwd: dirWith(), env: { LACQUER_CONFIG: 'missing.yaml' } })).toThrow(/config file not found/);
  });
});
