import { mkdtempSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors.js';
import { loadConfig } from '../../config/load.js';
import { defaults } from '../../config/schema.js';
import { instanceIdFor } from '../../redis/attach.js';
import { clientOptions, reconnectDelay } from '../../redis/connection.js';

function load(yaml: string, env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'lacquer-redis-config-'));
  writeFileSync(join(dir, 'proxy.config.yaml'), yaml);
  return loadConfig({ cwd: dir, env, argv: [] });
}

function issues(yaml: string, env: Record<string, string> = {}) {
  try {
    load(yaml, env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('the redis config section', () => {
  it('is off by default: no URL', () => {
    expect(defaults().redis.url).toBeNull();
  });

  it('takes redis:// and rediss:// URLs, from the file or LACQUER_REDIS_URL (which wins)', () => {
    expect(load('redis:\n  url: redis://cache.internal:6380/2\n').config.redis.url).toBe('redis://cache.internal:6380/2');
    expect(load('redis:\n  url: redis://file:6379\n', { LACQUER_REDIS_URL: 'rediss://env.example:6380' }).config.redis.url).toBe('rediss://env.example:6380');
    expect(load('', { LACQUER_REDIS_PASSWORD: 's3cret' }).config.redis.password).toBe('s3cret');
  });

  it.each([
    ['http://cache:6379', /not a Redis scheme/],
    ['cache:6379', /redis:\/\/ or rediss:\/\//],
    ['redis://cache:6379/db', /database number/],
  ])('refuses the URL %j with a precise message', (url, message) => {
    const [issue] = issues(`redis:\n  url: "${url}"\n`);
    expect(issue!.path).toBe('redis.url');
    expect(issue!.message).toMatch(message);
  });

  it('refuses TLS options on a plain redis:// URL, and a client certificate without its key', () => {
    expect(issues('redis:\n  url: redis://cache:6379\n  tls:\n    ca: /etc/ca.pem\n')[0]).toMatchObject({ path: 'redis.tls', message: expect.stringMatching(/rediss:\/\//) });
    expect(issues('redis:\n  url: rediss://cache:6379\n  tls:\n    cert: /etc/c.pem\n')[0]).toMatchObject({ path: 'redis.tls.key' });
  });

  it('bounds the retention and the queue', () => {
    expect(issues('redis:\n  purge:\n    retention: 10\n')[0]!.path).toBe('redis.purge.retention');
    expect(issues('redis:\n  purge:\n    queueSize: 0\n')[0]!.path).toBe('redis.purge.queueSize');
  });
});

describe('node-redis client options', () => {
  it('pass the URL and credentials, and never queue commands while offline', () => {
    const config = defaults().redis;
    config.url = 'redis://cache:6379';
    config.username = 'lacquer';
    config.password = 'pw';
    const options = clientOptions(config);
    expect(options).toMatchObject({ url: 'redis://cache:6379', username: 'lacquer', password: 'pw', disableOfflineQueue: true });
    expect(options.socket).not.toHaveProperty('tls');
  });

  it('read the TLS files for rediss:// URLs', () => {
    const config = defaults().redis;
    config.url = 'rediss://cache:6380';
    config.tls = { ca: '/ca.pem', cert: '/c.pem', key: '/k.pem', servername: 'redis.internal', rejectUnauthorized: false };
    const read: string[] = [];
    const options = clientOptions(config, (path) => {
      read.push(path);
      return Buffer.from(`pem of ${path}`);
    });
    expect(read.sort()).toEqual(['/c.pem', '/ca.pem', '/k.pem']);
    expect(options.socket).toMatchObject({ tls: true, servername: 'redis.internal', rejectUnauthorized: false, ca: Buffer.from('pem of /ca.pem') });
  });

  it('reconnect with growing, jittered, bounded pauses', () => {
    expect(reconnectDelay(0, () => 0.5)).toBe(50);
    expect(reconnectDelay(3, () => 0.5)).toBe(400);
    expect(reconnectDelay(100, () => 0.5)).toBe(2000);
    expect(reconnectDelay(100, () => 1)).toBe(2500);
    expect(reconnectDelay(100, () => 0)).toBe(1500);
  });
});

describe('the instance id', () => {
  it('is the configured one, else host name and listen port', () => {
    const config = defaults();
    expect(instanceIdFor(config)).toBe(`${hostname()}:8080`);
    config.redis.instanceId = 'edge-1';
    expect(instanceIdFor(config)).toBe('edge-1');
  });

  it('names the worker in a cluster worker, since workers share the host and port', () => {
    const config = defaults();
    expect(instanceIdFor(config, 3)).toBe(`${hostname()}:8080:w3`);
    config.redis.instanceId = 'edge-1';
    expect(instanceIdFor(config, 3)).toBe('edge-1:w3');
  });

  it('differs between two instances on port 0, which would otherwise skip each other’s purges', () => {
    const config = defaults();
    config.listen.port = 0;
    expect(instanceIdFor(config)).not.toBe(instanceIdFor(config));
  });
});
