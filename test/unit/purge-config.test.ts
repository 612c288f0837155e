import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors.js';
import { loadConfig } from '../../config/load.js';

function dirWith(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'lacquer-purge-config-'));
  writeFileSync(join(dir, 'proxy.config.yaml'), yaml);
  return dir;
}

function issues(yaml: string, env: NodeJS.ProcessEnv = {}) {
  try {
    loadConfig({ cwd: dirWith(yaml), env, argv: [] });
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('the purge config', () => {
  it('takes the token from LACQUER_PURGE_TOKEN over the file', () => {
    const { config } = loadConfig({ cwd: dirWith('purge:\n  token: from-the-file-0123456789\n'), env: { LACQUER_PURGE_TOKEN: 'from-the-environment-0123' }, argv: [] });
    expect(config.purge.token).toBe('from-the-environment-0123');
  });

  it('rejects a short token, a bad address and a bad tag header, naming the field', () => {
    expect(issues('', { LACQUER_PURGE_TOKEN: 'short' })).toEqual([
      { path: 'purge.token', message: 'expected a token of at least 16 visible ASCII characters without spaces (got 5 characters)' },
    ]);
    expect(issues('purge:\n  allow: [10.0.0.0/33, not-an-ip, 10.0.0.1]\n').map((issue) => issue.path)).toEqual(['purge.allow[0]', 'purge.allow[1]']);
    expect(issues('purge:\n  tagHeader: "x key"\n')[0]?.path).toBe('purge.tagHeader');
  });

  it('accepts addresses and ranges of both families and lower-cases the tag header', () => {
    const { config } = loadConfig({ cwd: dirWith('purge:\n  allow: [10.0.0.0/8, "::1", "fd00::/8"]\n  tagHeader: Xkey-Purge\n'), env: {}, argv: [] });
    expect(config.purge.allow).toEqual(['10.0.0.0/8', '::1', 'fd00::/8']);
    expect(config.purge.tagHeader).toBe('xkey-purge');
  });
});
