import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../config/errors.js';
import { helpText, loadConfig, type LoadOptions } from '../../config/load.js';
import { configSchema, defaults } from '../../config/schema.js';
import type { Config } from '../../config/types.js';
import { parseDuration, parseSize } from '../../config/units.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MiB = 2 ** 20;

/** A fresh directory, with `proxy.config.yaml` holding `yaml` when given. */
function tempDir(yaml?: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'lacquer-config-'));
  if (yaml !== undefined) writeFileSync(join(dir, 'proxy.config.yaml'), yaml);
  return dir;
}

/** Loads with an empty environment unless one is given, so the developer's LACQUER_* variables cannot leak in. */
function load(options: LoadOptions = {}) {
  return loadConfig({ env: {}, argv: [], ...options });
}

function configError(run: () => unknown): ConfigError {
  try {
    run();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

function issuesFor(yaml: string, options: LoadOptions = {}) {
  return configError(() => load({ cwd: tempDir(yaml), ...options })).issues;
}

/** Dotted paths of every leaf; `leaves` names paths whose value is one option even though it is an object. */
function leafPaths(value: unknown, leaves: ReadonlySet<string>, prefix = ''): string[] {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || leaves.has(prefix)) return [prefix];
  return Object.entries(value).flatMap(([key, child]) => leafPaths(child, leaves, prefix === '' ? key : `${prefix}.${key}`));
}

describe('parseSize', () => {
  it('reads a bare number, or a numeric string, as bytes', () => {
    expect(parseSize(0)).toBe(0);
    expect(parseSize(512)).toBe(512);
    expect(parseSize('512')).toBe(512);
    expect(parseSize('512B')).toBe(512);
  });

  it('reads binary units as powers of 1024', () => {
    expect(parseSize('64KiB')).toBe(64 * 1024);
    expect(parseSize('256MiB')).toBe(256 * MiB);
    expect(parseSize('10GiB')).toBe(10 * 2 ** 30);
    expect(parseSize('2TiB')).toBe(2 * 2 ** 40);
    expect(parseSize('1.5MiB')).toBe(1.5 * MiB);
  });

  it('reads decimal units as powers of 1000', () => {
    expect(parseSize('1KB')).toBe(1_000);
    expect(parseSize('3MB')).toBe(3_000_000);
    expect(parseSize('1.5GB')).toBe(1_500_000_000);
    expect(parseSize('1TB')).toBe(1e12);
  });

  it('ignores the letter case of the unit and whitespace around it', () => {
    expect(parseSize('10gib')).toBe(10 * 2 ** 30);
    expect(parseSize('10 MIB')).toBe(10 * MiB);
    expect(parseSize(' 4 kb ')).toBe(4_000);
  });

  it.each(['lots', '', '   ', 'MiB', '1.2.3MiB', '0x10', '1e3', '5 MiB extra'])('rejects %j with the expected form', (input) => {
    expect(() => parseSize(input)).toThrow('expected a size such as 256MiB');
  });

  it('rejects an unknown unit and lists the known ones', () => {
    expect(() => parseSize('10 parsecs')).toThrow(/unknown size unit "parsecs".*KiB/);
    expect(() => parseSize('10k')).toThrow(/unknown size unit "k"/);
  });

  it('rejects negative sizes, as numbers and as strings', () => {
    expect(() => parseSize(-1)).toThrow(/must not be negative/);
    expect(() => parseSize('-5MiB')).toThrow(/must not be negative/);
  });

  it('rejects NaN and the infinities', () => {
    expect(() => parseSize(Number.NaN)).toThrow(/expected a size/);
    expect(() => parseSize(Infinity)).toThrow(/expected a size/);
    expect(() => parseSize(-Infinity)).toThrow(/expected a size/);
    expect(() => parseSize('NaN')).toThrow(/expected a size/);
  });

  it('rejects a fraction of a byte, which means a forgotten unit', () => {
    expect(() => parseSize(1.5)).toThrow(/whole number of bytes/);
    expect(() => parseSize('1.5')).toThrow(/whole number of bytes/);
  });

  it('rejects sizes beyond what a number holds exactly', () => {
    expect(() => parseSize('99999999TiB')).toThrow(/too large/);
  });
});

describe('parseDuration', () => {
  it('reads a bare number as seconds', () => {
    expect(parseDuration(0)).toBe(0);
    expect(parseDuration(30)).toBe(30_000);
    expect(parseDuration('30')).toBe(30_000);
    expect(parseDuration(0.25)).toBe(250);
  });

  it('reads ms, s, m, h and d', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1_500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('1d')).toBe(86_400_000);
    expect(parseDuration(' 10 s ')).toBe(10_000);
  });

  it('rejects upper-case units, since nginx reads 1M as a month', () => {
    expect(() => parseDuration('1M')).toThrow(/unknown duration unit "M"/);
    expect(() => parseDuration('30S')).toThrow(/unknown duration unit/);
  });

  it.each(['soon', '', 's', '1 week', '1h30m'])('rejects %j', (input) => {
    expect(() => parseDuration(input)).toThrow(/duration such as 30s/);
  });

  it('rejects negative durations, NaN and the infinities', () => {
    expect(() => parseDuration(-1)).toThrow(/must not be negative/);
    expect(() => parseDuration('-1s')).toThrow(/must not be negative/);
    expect(() => parseDuration(Number.NaN)).toThrow(/expected a duration/);
    expect(() => parseDuration(Infinity)).toThrow(/expected a duration/);
  });

  it('rounds to whole milliseconds', () => {
    expect(parseDuration('1.0004s')).toBe(1_000);
    expect(parseDuration('0.5ms')).toBe(1);
  });
});

describe('defaults', () => {
  it('are the values documented in config/types.ts, in bytes and milliseconds', () => {
    const expected: Config = {
      workers: 1,
      listen: { host: '127.0.0.1', port: 8080 },
      admin: { host: '127.0.0.1', port: 8081 },
      origin: { url: null, preserveHost: false, connections: 128, connectTimeout: 5_000, headersTimeout: 30_000, bodyTimeout: 30_000 },
      cache: {
        name: 'lacquer',
        memory: { maxSize: 256 * MiB, maxObjectSize: 8 * MiB },
        disk: { enabled: true, path: 'var/cache', maxSize: 1024 * MiB, maxObjectSize: 256 * MiB },
        maxVariants: 16,
        defaultTtl: 0,
        negativeTtl: 0,
        heuristicFraction: 0.1,
        heuristicMaxTtl: 86_400_000,
        jitter: 0.1,
        staleWhileRevalidate: 0,
        staleIfError: 10_000,
        hitForMissTtl: 30_000,
        setCookie: 'pass',
        honorRequestCacheControl: true,
      },
      key: { query: { sort: true, drop: [] }, headers: [] },
      request: {
        stripHeaders: [
          'x-forwarded-host',
          'x-forwarded-server',
          'x-forwarded-scheme',
          'x-forwarded-port',
          'x-forwarded-prefix',
          'x-host',
          'x-original-url',
          'x-original-host',
          'x-rewrite-url',
          'x-http-method-override',
          'x-http-method',
          'x-method-override',
        ],
      },
      tags: { headers: ['surrogate-key', 'cache-tag'], strip: true, maxPerEntry: 256 },
      purge: { token: null, allow: [], method: true, tagHeader: 'surrogate-key', maxBodySize: 64 * 1024 },
      log: { level: 'info' },
      metrics: { enabled: true },
      limits: { headersTimeout: 15_000, requestTimeout: 300_000 },
      shutdown: { drainTimeout: 10_000 },
      redis: {
        url: null,
        username: null,
        password: null,
        tls: { ca: null, cert: null, key: null, servername: null, rejectUnauthorized: true },
        keyPrefix: 'lacquer:',
        instanceId: null,
        connectTimeout: 5_000,
        purge: { retention: 100_000, queueSize: 10_000 },
        shared: { enabled: false, maxObjectSize: 1024 * 1024, timeout: 50, lockTtl: 0 },
      },
    };
    expect(defaults()).toStrictEqual(expected);
  });

  it('are the parse of an empty document', () => {
    expect(configSchema.parse({})).toStrictEqual(defaults());
  });

  it('are a fresh object on every call, so a caller may modify its copy', () => {
    const first = defaults();
    first.request.stripHeaders.push('x-extra');
    first.cache.memory.maxSize = 1;
    expect(defaults().request.stripHeaders).not.toContain('x-extra');
    expect(defaults().cache.memory.maxSize).toBe(256 * MiB);
  });
});

describe('the committed proxy.config.yaml', () => {
  it('parses to exactly the defaults', () => {
    const { config, file } = load({ cwd: REPO_ROOT });
    expect(file).toBe(join(REPO_ROOT, 'proxy.config.yaml'));
    expect(config).toStrictEqual(defaults());
  });

  it('lists every option', () => {
    const raw: unknown = parseYaml(readFileSync(join(REPO_ROOT, 'proxy.config.yaml'), 'utf8'));
    const addresses = new Set(['listen', 'admin']);
    expect(leafPaths(raw, addresses).sort()).toEqual(leafPaths(defaults(), addresses).sort());
  });

  it('has a comment on every option line', () => {
    const lines = readFileSync(join(REPO_ROOT, 'proxy.config.yaml'), 'utf8').split('\n');
    const optionLines = lines.filter((line) => /^\s*[A-Za-z]+:\s*\S/.test(line));
    expect(optionLines).toHaveLength(leafPaths(defaults(), new Set(['listen', 'admin'])).length);
    for (const line of optionLines) expect(line, line).toMatch(/\s#\s\S/);
  });
});

describe('loading a config file', () => {
  it('gives the defaults when the default file is absent', () => {
    const { config, file, help } = load({ cwd: tempDir() });
    expect(file).toBeNull();
    expect(help).toBe(false);
    expect(config).toStrictEqual(defaults());
  });

  it('accepts an empty file, or one holding only comments', () => {
    for (const text of ['', '\n\n', '# nothing set yet\n']) {
      const dir = tempDir(text);
      const { config, file } = load({ cwd: dir });
      expect(file).toBe(join(dir, 'proxy.config.yaml'));
      expect(config).toStrictEqual(defaults());
    }
  });

  it('treats a section whose keys are all commented out as empty', () => {
    const { config } = load({ cwd: tempDir('cache:\n  # maxVariants: 4\norigin:\n') });
    expect(config.cache).toStrictEqual(defaults().cache);
    expect(config.origin).toStrictEqual(defaults().origin);
  });

  it('converts sizes and durations written with units, and keeps defaults for what is not set', () => {
    const { config } = load({
      cwd: tempDir('cache:\n  memory: { maxSize: 1GiB, maxObjectSize: 512KiB }\n  defaultTtl: 2m\n  staleIfError: 90\norigin:\n  connectTimeout: 250ms\n'),
    });
    expect(config.cache.memory).toEqual({ maxSize: 2 ** 30, maxObjectSize: 512 * 1024 });
    expect(config.cache.defaultTtl).toBe(120_000);
    expect(config.cache.staleIfError).toBe(90_000);
    expect(config.origin.connectTimeout).toBe(250);
    expect(config.origin.headersTimeout).toBe(30_000);
  });

  it('lower-cases header names, in every header list, and drops the duplicates that makes', () => {
    const { config } = load({
      cwd: tempDir('key:\n  headers: [X-Tenant, Accept-Language, x-tenant]\nrequest:\n  stripHeaders: [X-Forwarded-Host]\ntags:\n  headers: [Surrogate-Key]\n'),
    });
    expect(config.key.headers).toEqual(['x-tenant', 'accept-language']);
    expect(config.request.stripHeaders).toEqual(['x-forwarded-host']);
    expect(config.tags.headers).toEqual(['surrogate-key']);
  });

  it('reads listen addresses with IPv6 hosts and port 0', () => {
    const { config } = load({ cwd: tempDir('listen: "[::1]:0"\nadmin: localhost:9000\n') });
    expect(config.listen).toEqual({ host: '::1', port: 0 });
    expect(config.admin).toEqual({ host: 'localhost', port: 9000 });
  });

  it('accepts an origin with a path prefix', () => {
    const { config } = load({ cwd: tempDir('origin:\n  url: https://api.example:8443/v1/\n') });
    expect(config.origin.url).toBe('https://api.example:8443/v1/');
  });

  it('reads the file named by LACQUER_CONFIG, relative to cwd', () => {
    const dir = tempDir('cache:\n  maxVariants: 2\n');
    writeFileSync(join(dir, 'other.yaml'), 'cache:\n  maxVariants: 3\n');
    const loaded = load({ cwd: dir, env: { LACQUER_CONFIG: 'other.yaml' } });
    expect(loaded.file).toBe(join(dir, 'other.yaml'));
    expect(loaded.config.cache.maxVariants).toBe(3);
  });

  it('prefers --config (or -c) over LACQUER_CONFIG', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'env.yaml'), 'cache:\n  maxVariants: 3\n');
    writeFileSync(join(dir, 'flag.yaml'), 'cache:\n  maxVariants: 4\n');
    const env = { LACQUER_CONFIG: 'env.yaml' };
    expect(load({ cwd: dir, env, argv: ['--config', 'flag.yaml'] }).config.cache.maxVariants).toBe(4);
    expect(load({ cwd: dir, env, argv: ['-c', join(dir, 'flag.yaml')] }).config.cache.maxVariants).toBe(4);
  });

  it('returns a deeply frozen config', () => {
    const { config } = load({ cwd: tempDir('key:\n  headers: [x-tenant]\n') });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.listen)).toBe(true);
    expect(Object.isFrozen(config.cache.memory)).toBe(true);
    expect(Object.isFrozen(config.key.query.drop)).toBe(true);
    expect(() => {
      (config.cache.memory as { maxSize: number }).maxSize = 1;
    }).toThrow(TypeError);
    expect(() => config.key.headers.push('x-other')).toThrow(TypeError);
  });
});

describe('precedence: defaults < file < environment < flags', () => {
  const file = 'listen: 127.0.0.1:1000\nadmin: 127.0.0.1:2000\norigin:\n  url: http://file.example/\nlog:\n  level: debug\n';

  it('lets the file override the defaults', () => {
    const { config } = load({ cwd: tempDir(file) });
    expect(config.listen.port).toBe(1000);
    expect(config.admin.port).toBe(2000);
    expect(config.origin.url).toBe('http://file.example/');
    expect(config.log.level).toBe('debug');
    expect(config.cache.maxVariants).toBe(16);
  });

  it('lets the environment override the file', () => {
    const env = { LACQUER_LISTEN: '127.0.0.1:1001', LACQUER_ORIGIN: 'http://env.example/', LACQUER_ADMIN: '127.0.0.1:2001', LACQUER_LOG_LEVEL: 'warn' };
    const { config } = load({ cwd: tempDir(file), env });
    expect(config.listen.port).toBe(1001);
    expect(config.admin.port).toBe(2001);
    expect(config.origin.url).toBe('http://env.example/');
    expect(config.log.level).toBe('warn');
  });

  it('lets flags override the environment', () => {
    const env = { LACQUER_LISTEN: '127.0.0.1:1001', LACQUER_ORIGIN: 'http://env.example/', LACQUER_ADMIN: '127.0.0.1:2001' };
    const argv = ['--listen', '127.0.0.1:1002', '--origin=http://flag.example:8000/api', '--admin', '127.0.0.1:2002'];
    const { config } = load({ cwd: tempDir(file), env, argv });
    expect(config.listen.port).toBe(1002);
    expect(config.admin.port).toBe(2002);
    expect(config.origin.url).toBe('http://flag.example:8000/api');
    expect(config.log.level).toBe('debug');
  });

  it('ignores empty environment variables', () => {
    const { config, file: read } = load({ cwd: tempDir(file), env: { LACQUER_LISTEN: '', LACQUER_CONFIG: '', LACQUER_LOG_LEVEL: '' } });
    expect(read).not.toBeNull();
    expect(config.listen.port).toBe(1000);
    expect(config.log.level).toBe('debug');
  });

  it('applies an override even where the file left the section empty', () => {
    const { config } = load({ cwd: tempDir('origin:\n'), env: { LACQUER_ORIGIN: 'http://env.example/' } });
    expect(config.origin.url).toBe('http://env.example/');
  });

  it('reads process.env when no environment is passed', () => {
    const saved = process.env['LACQUER_LOG_LEVEL'];
    process.env['LACQUER_LOG_LEVEL'] = 'trace';
    try {
      expect(loadConfig({ cwd: tempDir(), argv: [] }).config.log.level).toBe('trace');
    } finally {
      if (saved === undefined) delete process.env['LACQUER_LOG_LEVEL'];
      else process.env['LACQUER_LOG_LEVEL'] = saved;
    }
  });
});

describe('bad configs name the field and the reason', () => {
  it('rejects an unknown key, at any depth', () => {
    expect(issuesFor('cache:\n  maxSise: 5\n')).toEqual([{ path: 'cache.maxSise', message: 'unknown option' }]);
    expect(issuesFor('colour: blue\n')).toEqual([{ path: 'colour', message: 'unknown option' }]);
    expect(issuesFor('cache:\n  memory:\n    size: 1\n')).toEqual([{ path: 'cache.memory.size', message: 'unknown option' }]);
  });

  it('rejects a wrong type and shows the value it got', () => {
    expect(issuesFor('cache:\n  maxVariants: many\n')).toEqual([
      { path: 'cache.maxVariants', message: 'expected a whole number from 1 to 1024 (got "many")' },
    ]);
    expect(issuesFor('cache:\n  honorRequestCacheControl: yes\n')).toEqual([
      { path: 'cache.honorRequestCacheControl', message: 'expected true or false (got "yes")' },
    ]);
    expect(issuesFor('origin: http://x.example\n')).toEqual([
      { path: 'origin', message: expect.stringMatching(/^expected a mapping.*\(got "http:\/\/x\.example"\)$/) },
    ]);
    expect(issuesFor('key:\n  headers: x-tenant\n')[0]).toEqual({ path: 'key.headers', message: expect.stringContaining('expected a list') });
  });

  it('rejects values out of range', () => {
    expect(issuesFor('cache:\n  jitter: 0.9\n')[0]).toEqual({ path: 'cache.jitter', message: 'expected a number from 0 to 0.5 (got 0.9)' });
    expect(issuesFor('cache:\n  maxVariants: 0\n')[0]!.path).toBe('cache.maxVariants');
    expect(issuesFor('cache:\n  heuristicFraction: 1.5\n')[0]!.path).toBe('cache.heuristicFraction');
    expect(issuesFor('origin:\n  connections: 2.5\n')[0]!.path).toBe('origin.connections');
    expect(issuesFor('cache:\n  setCookie: keep\n')[0]).toEqual({ path: 'cache.setCookie', message: 'expected one of pass, strip (got "keep")' });
    expect(issuesFor('log:\n  level: verbose\n')[0]!.path).toBe('log.level');
  });

  it('rejects an origin that is not http: or https:, with the reason', () => {
    expect(issuesFor('origin:\n  url: ftp://files.example/\n')).toEqual([
      { path: 'origin.url', message: 'the origin must use http: or https:, not ftp: (got "ftp://files.example/")' },
    ]);
  });

  it.each([
    ['not a url', /absolute http/],
    ['localhost:3000', /absolute http/],
    ['http://api.example/?v=1', /query/],
    ['http://api.example/#top', /fragment/],
    ['http://user:secret@api.example/', /credentials/],
  ])('rejects the origin URL %j', (url, reason) => {
    const [issue] = issuesFor(`origin:\n  url: "${url}"\n`);
    expect(issue!.path).toBe('origin.url');
    expect(issue!.message).toMatch(reason);
  });

  it('reports a bad value from the environment or a flag against the field it sets', () => {
    expect(issuesFor('', { env: { LACQUER_ORIGIN: 'gopher://old.example' } })[0]!.path).toBe('origin.url');
    expect(issuesFor('', { env: { LACQUER_LOG_LEVEL: 'loud' } })[0]!.path).toBe('log.level');
    expect(issuesFor('', { argv: ['--listen', 'localhost'] })[0]!.path).toBe('listen');
    expect(issuesFor('', { argv: ['--admin', ''] })[0]!.path).toBe('admin');
  });

  it.each([
    [':8080', /host is required/],
    ['localhost', /HOST:PORT/],
    ['127.0.0.1:65536', /port/],
    ['127.0.0.1:http', /port/],
    ['::1:8080', /brackets/],
    ['[not-v6]:8080', /not a host name or IP address/],
  ])('rejects the listen address %j', (value, reason) => {
    const [issue] = issuesFor(`listen: "${value}"\n`);
    expect(issue!.path).toBe('listen');
    expect(issue!.message).toMatch(reason);
  });

  it('rejects a negative size or duration, naming the field', () => {
    expect(issuesFor('cache:\n  memory:\n    maxSize: -5\n')).toEqual([
      { path: 'cache.memory.maxSize', message: 'must not be negative: expected a size such as 256MiB (got -5)' },
    ]);
    expect(issuesFor('cache:\n  defaultTtl: -1s\n')[0]).toEqual({ path: 'cache.defaultTtl', message: expect.stringContaining('negative') });
  });

  it('rejects a timeout longer than a timer can wait', () => {
    expect(issuesFor('origin:\n  bodyTimeout: 30d\n')[0]).toEqual({ path: 'origin.bodyTimeout', message: expect.stringContaining('at most') });
  });

  it('rejects an object limit larger than the memory tier', () => {
    expect(issuesFor('cache:\n  memory:\n    maxSize: 1MiB\n    maxObjectSize: 2MiB\n')).toEqual([
      { path: 'cache.memory.maxObjectSize', message: 'cache.memory.maxObjectSize (2MiB) must not be larger than cache.memory.maxSize (1MiB)' },
    ]);
    expect(issuesFor('cache:\n  memory:\n    maxSize: 4MiB\n')[0]!.path).toBe('cache.memory.maxObjectSize');
  });

  it('names list entries by index', () => {
    expect(issuesFor('key:\n  headers: [x-ok, "bad header"]\n')[0]).toEqual({
      path: 'key.headers[1]',
      message: expect.stringContaining('expected an HTTP header name'),
    });
    expect(issuesFor('key:\n  query:\n    drop: [utm_source, ""]\n')[0]!.path).toBe('key.query.drop[1]');
  });

  it('rejects a cache name that is not a token', () => {
    expect(issuesFor('cache:\n  name: my cache\n')[0]!.path).toBe('cache.name');
  });

  it('never repeats a rejected purge token, only its shape', () => {
    const error = configError(() => load({ cwd: tempDir(), env: { LACQUER_PURGE_TOKEN: 'k8s-secret-0123456789abcdef\n' } }));
    const text = error.format();
    expect(text).toContain('purge.token');
    expect(text).toContain('28 characters, with a line break');
    expect(text).not.toContain('0123456789abcdef');
  });

  it('does not repeat the credentials of a rejected URL', () => {
    const text = configError(() => load({ cwd: tempDir('origin:\n  url: "ftp://alice:s3cret@example.com/"\n') })).format();
    expect(text).toContain('origin.url');
    expect(text).not.toContain('s3cret');
  });

  it('rejects a tier of zero bytes, naming the field', () => {
    const error = configError(() => load({ cwd: tempDir('cache:\n  memory:\n    maxSize: 0\n    maxObjectSize: 0\n') }));
    expect(error.issues.map((issue) => issue.path).sort()).toEqual(['cache.memory.maxObjectSize', 'cache.memory.maxSize']);
    expect(error.issues[0]!.message).toMatch(/at least 1 bytes/);
  });

  it('reports every problem at once, one line each in format()', () => {
    const error = configError(() => load({ cwd: tempDir('cache:\n  memory:\n    maxSize: lots\n  colour: blue\nlisten: nowhere\n') }));
    expect(error.issues.map((issue) => issue.path).sort()).toEqual(['cache.colour', 'cache.memory.maxSize', 'listen']);
    const lines = error.format().split('\n');
    expect(lines).toHaveLength(3);
    expect(lines).toContain('config error: cache.memory.maxSize: expected a size such as 256MiB (got "lots")');
    expect(lines).toContain('config error: cache.colour: unknown option');
    expect(error.message).toContain('cache.memory.maxSize');
  });
});

describe('file and argument errors', () => {
  it('rejects a file named by --config that does not exist', () => {
    const dir = tempDir();
    const error = configError(() => load({ cwd: dir, argv: ['--config', 'missing.yaml'] }));
    expect(error.issues).toEqual([{ path: join(dir, 'missing.yaml'), message: 'config file not found (named by --config)' }]);
  });

  it('rejects a file named by LACQUER_CONFIG that does not exist', () => {
    const error = configError(() => load({ cwd: tempDir(), env: { LACQUER_CONFIG: 'missing.yaml' } }));
    expect(error.issues[0]!.message).toBe('config file not found (named by LACQUER_CONFIG)');
  });

  it('rejects a directory given as the config file', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'conf.d'));
    expect(configError(() => load({ cwd: dir, argv: ['-c', 'conf.d'] })).issues[0]!.message).toMatch(/directory/);
  });

  it('rejects an empty --config', () => {
    expect(configError(() => load({ cwd: tempDir(), argv: ['--config='] })).issues[0]!.path).toBe('--config');
  });

  it('reports a YAML syntax error with the file, line and column', () => {
    const dir = tempDir('log:\n  level: info\nlog:\n  level: warn\n');
    const [issue] = configError(() => load({ cwd: dir })).issues;
    expect(issue!.path).toBe(`${join(dir, 'proxy.config.yaml')}:3:1`);
    expect(issue!.message).toMatch(/^YAML syntax error: .*unique/);
  });

  it('reports a broken YAML document with its line', () => {
    const dir = tempDir('listen: 127.0.0.1:8080\ncache:\n\tname: tabbed\n');
    const [issue] = configError(() => load({ cwd: dir })).issues;
    expect(issue!.path).toMatch(/proxy\.config\.yaml:3:\d+$/);
  });

  it('reports an unresolvable YAML alias against the file', () => {
    const dir = tempDir('cache:\n  name: *nowhere\n');
    expect(configError(() => load({ cwd: dir })).issues[0]!.path).toBe(join(dir, 'proxy.config.yaml'));
  });

  it('rejects a file whose top level is not a mapping', () => {
    expect(issuesFor('- listen\n- admin\n')[0]!.message).toMatch(/mapping/);
  });

  it('rejects an unknown flag, naming it', () => {
    expect(configError(() => load({ cwd: tempDir(), argv: ['--orgin', 'http://x'] })).issues).toEqual([
      { path: '--orgin', message: 'unknown option (see --help)' },
    ]);
    expect(configError(() => load({ cwd: tempDir(), argv: ['--cache-size', '1GiB'] })).issues[0]!.path).toBe('--cache-size');
  });

  it('takes the disk tier directory from --cache-dir over LACQUER_CACHE_DIR over the file', () => {
    const dir = tempDir('cache:\n  disk:\n    path: /from/file\n');
    expect(load({ cwd: dir }).config.cache.disk.path).toBe('/from/file');
    expect(load({ cwd: dir, env: { LACQUER_CACHE_DIR: '/from/env' } }).config.cache.disk.path).toBe('/from/env');
    expect(load({ cwd: dir, env: { LACQUER_CACHE_DIR: '/from/env' }, argv: ['--cache-dir', '/from/flag'] }).config.cache.disk.path).toBe('/from/flag');
    expect(configError(() => load({ cwd: tempDir(), argv: ['--cache-dir', ' '] })).issues[0]!.path).toBe('cache.disk.path');
  });

  it('rejects disk object limits above the disk size or below the memory object limit', () => {
    expect(issuesFor('cache:\n  disk:\n    maxSize: 20MiB\n    maxObjectSize: 30MiB\n')).toEqual([
      { path: 'cache.disk.maxObjectSize', message: 'cache.disk.maxObjectSize (30MiB) must not be larger than cache.disk.maxSize (20MiB)' },
    ]);
    expect(issuesFor('cache:\n  disk:\n    maxObjectSize: 1MiB\n')).toEqual([
      { path: 'cache.disk.maxObjectSize', message: 'cache.disk.maxObjectSize (1MiB) must not be smaller than cache.memory.maxObjectSize (8MiB) while the disk tier is enabled' },
    ]);
    expect(load({ cwd: tempDir('cache:\n  disk:\n    enabled: false\n    maxObjectSize: 1MiB\n') }).config.cache.disk.maxObjectSize).toBe(MiB);
  });

  it('rejects a flag without its value, and a stray argument', () => {
    expect(configError(() => load({ cwd: tempDir(), argv: ['--listen'] })).issues[0]).toEqual({ path: '--listen', message: 'needs a value (see --help)' });
    expect(configError(() => load({ cwd: tempDir(), argv: ['-c'] })).issues[0]!.path).toBe('--config');
    expect(configError(() => load({ cwd: tempDir(), argv: ['serve'] })).issues[0]!.path).toBe('serve');
  });
});

describe('--help', () => {
  it('asks for help without reading or validating the file', () => {
    for (const argv of [['--help'], ['-h']]) {
      const loaded = load({ cwd: tempDir('not: [valid'), argv, env: { LACQUER_LISTEN: 'nonsense' } });
      expect(loaded.help).toBe(true);
      expect(loaded.file).toBeNull();
      expect(loaded.config).toStrictEqual(defaults());
    }
  });

  it('documents usage, every flag, every variable, the precedence and the defaults', () => {
    const text = helpText();
    expect(text).toContain('lacquer [options]');
    for (const word of ['--config', '-c,', '--listen', '--origin', '--admin', '--help', '-h,']) expect(text).toContain(word);
    for (const name of ['LACQUER_CONFIG', 'LACQUER_LISTEN', 'LACQUER_ORIGIN', 'LACQUER_ADMIN', 'LACQUER_LOG_LEVEL']) expect(text).toContain(name);
    expect(text).toMatch(/defaults, the config file, environment\s+variables, command-line flags/);
    for (const value of ['127.0.0.1:8080', '127.0.0.1:8081', 'proxy.config.yaml', 'bundled example origin', 'default: info']) {
      expect(text).toContain(value);
    }
  });
});

describe('workers', () => {
  it('takes a whole number or "auto" from the file, the environment and --workers', () => {
    expect(load({ cwd: tempDir('workers: 4\n') }).config.workers).toBe(4);
    expect(load({ cwd: tempDir('workers: auto\n') }).config.workers).toBe('auto');
    expect(load({ cwd: tempDir('workers: 4\n'), env: { LACQUER_WORKERS: '3' } }).config.workers).toBe(3);
    expect(load({ cwd: tempDir('workers: 4\n'), env: { LACQUER_WORKERS: '3' }, argv: ['--workers', 'auto'] }).config.workers).toBe('auto');
    expect(load({ cwd: tempDir('') }).config.workers).toBe(1);
  });

  it('rejects zero, fractions, negative numbers and words other than auto, naming the field', () => {
    const message = 'expected a whole number from 1 to 1024, or "auto" (one per available core)';
    for (const bad of ['0', '1.5', '-2', 'many', '2000']) {
      expect(issuesFor(`workers: ${bad}\n`)).toEqual([{ path: 'workers', message: expect.stringContaining(message) }]);
    }
    expect(issuesFor('', { env: { LACQUER_WORKERS: 'two' } })[0]!.path).toBe('workers');
  });
});
