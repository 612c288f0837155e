import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../config/errors.js';
import { defaults } from '../../config/schema.js';
import type { Config } from '../../config/types.js';
import type { DrainReport } from '../../proxy/main.js';
import { handleSignals, type SignalTarget } from '../../proxy/process/signals.js';
import { planReload } from '../../proxy/process/reload.js';

function harness(options: { close?: () => Promise<DrainReport>; loadConfig?: () => Config } = {}) {
  const emitter = new EventEmitter();
  const lines: string[] = [];
  const exits: number[] = [];
  let closes = 0;
  const reloads: Config[] = [];
  const running = defaults();
  const target: SignalTarget = {
    close: () => {
      closes++;
      return options.close?.() ?? Promise.resolve({ cutConnections: 0, ms: 12 });
    },
    reload: (next) => {
      reloads.push(next);
      return planReload(running, next);
    },
  };
  const handlers = handleSignals(target, {
    loadConfig: options.loadConfig ?? defaults,
    log: (line) => lines.push(line),
    exit: (code) => exits.push(code),
    signals: emitter as unknown as Pick<NodeJS.Process, 'on' | 'off'>,
  });
  const settle = () => new Promise((done) => setImmediate(done));
  return { emitter, lines, exits, reloads, handlers, settle, closes: () => closes };
}

describe('signal handling', () => {
  it('drains once however many SIGTERM and SIGINT arrive, then exits 0', async () => {
    const h = harness();
    h.emitter.emit('SIGTERM');
    h.emitter.emit('SIGINT');
    h.emitter.emit('SIGTERM');
    await h.settle();
    expect(h.closes()).toBe(1);
    expect(h.exits).toEqual([0]);
    expect(h.lines).toContain('lacquer: drained in 12 ms, exiting');
    expect(h.lines.filter((line) => line.includes('already draining'))).toHaveLength(2);
  });

  it('says how many connections the drain deadline cut, and still exits 0', async () => {
    const h = harness({ close: () => Promise.resolve({ cutConnections: 3, ms: 10_004 }) });
    h.emitter.emit('SIGTERM');
    await h.settle();
    expect(h.exits).toEqual([0]);
    expect(h.lines.at(-1)).toBe('lacquer: drain deadline reached after 10004 ms; closed 3 connection(s) still in flight, exiting');
  });

  it('exits 1 when releasing resources fails', async () => {
    const h = harness({ close: () => Promise.reject(new Error('store would not close')) });
    h.emitter.emit('SIGTERM');
    await h.settle();
    expect(h.exits).toEqual([1]);
    expect(h.lines.at(-1)).toBe('lacquer: error while stopping: store would not close');
  });

  it('rejects a config that does not validate, one line per problem, and reloads nothing', () => {
    const h = harness({
      loadConfig: () => {
        throw new ConfigError([
          { path: 'cache.defaultTtl', message: 'expected a duration such as 30s (got "forever")' },
          { path: 'purge.colour', message: 'unknown option' },
        ]);
      },
    });
    h.emitter.emit('SIGHUP');
    expect(h.reloads).toEqual([]);
    expect(h.lines).toEqual([
      'lacquer: config reload rejected: cache.defaultTtl: expected a duration such as 30s (got "forever")',
      'lacquer: config reload rejected: purge.colour: unknown option',
      'lacquer: the running config stays',
    ]);
  });

  it('applies a valid config and names what changed and what needs a restart', () => {
    const next = defaults();
    next.cache.staleIfError = 60_000;
    next.listen = { host: '0.0.0.0', port: 80 };
    const h = harness({ loadConfig: () => next });
    h.emitter.emit('SIGHUP');
    expect(h.reloads).toEqual([next]);
    expect(h.lines).toEqual([
      'lacquer: config reload: listen.host changed but takes effect only after a restart; the running value stays',
      'lacquer: config reload: listen.port changed but takes effect only after a restart; the running value stays',
      'lacquer: config reloaded: cache.staleIfError',
    ]);
  });

  it('ignores SIGHUP while draining, and listens to nothing once disposed', async () => {
    const h = harness({ close: () => new Promise(() => {}) });
    h.emitter.emit('SIGTERM');
    h.emitter.emit('SIGHUP');
    expect(h.reloads).toEqual([]);
    h.handlers.dispose();
    expect(h.emitter.listenerCount('SIGTERM') + h.emitter.listenerCount('SIGINT') + h.emitter.listenerCount('SIGHUP')).toBe(0);
  });
});
