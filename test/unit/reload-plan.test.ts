import { describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { planReload, RELOADABLE_FIELDS } from '../../proxy/process/reload.js';

describe('planning a config reload', () => {
  it('applies reloadable fields, keeps the running value of every other field, and lists those as needing a restart', () => {
    const running = defaults();
    const next = defaults();
    next.cache.defaultTtl = 60_000;
    next.purge.token = 'a-new-token-0123456789';
    next.purge.allow = ['10.0.0.0/8'];
    next.listen = { host: '0.0.0.0', port: 9000 };
    next.cache.memory.maxSize = 1024;
    next.key.headers = ['x-tenant'];
    const plan = planReload(running, next);
    expect(plan.applied).toEqual(['cache.defaultTtl', 'purge.token', 'purge.allow']);
    expect([...plan.needsRestart].sort()).toEqual(['cache.memory.maxSize', 'key.headers', 'listen.host', 'listen.port']);
    expect(plan.config.cache.defaultTtl).toBe(60_000);
    expect(plan.config.purge.token).toBe('a-new-token-0123456789');
    expect(plan.config.listen).toEqual(running.listen);
    expect(plan.config.cache.memory.maxSize).toBe(running.cache.memory.maxSize);
    expect(plan.config.key.headers).toEqual([]);
  });

  it('changes nothing for an identical config, and leaves the running config object untouched', () => {
    const running = defaults();
    const plan = planReload(running, defaults());
    expect(plan.applied).toEqual([]);
    expect(plan.needsRestart).toEqual([]);
    expect(plan.config).toStrictEqual(running);
    const changed = defaults();
    changed.cache.staleIfError = 5_000;
    planReload(running, changed);
    expect(running.cache.staleIfError).toBe(defaults().cache.staleIfError);
  });

  it('names only fields that exist in the config', () => {
    const config = defaults() as unknown as Record<string, Record<string, unknown>>;
    for (const field of RELOADABLE_FIELDS) {
      const [section, name] = field.split('.') as [string, string];
      expect(config[section], field).toHaveProperty(name);
    }
  });
});
