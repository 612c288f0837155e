import { isDeepStrictEqual } from 'node:util';
import type { Config } from '../../config/types.js';

/**
 * What a configuration reload (SIGHUP) may change in a running process, as a
 * pure decision: given the running config and a freshly validated one, the
 * config to run with next and the fields that differ.
 *
 * Reloadable fields are those read per request or per decision, so changing
 * them needs no rebuilt listener, pool or store, and the cache survives:
 * lifetimes Lacquer assigns itself, the stale windows, hit-for-miss, the
 * Set-Cookie and request Cache-Control policies, who may purge, the log
 * level and the drain deadline. Anything else (addresses, the origin and its
 * pool, store sizes and paths, the cache key, stripped headers, tags,
 * metrics, client limits) shapes state that is already built; a change there
 * is reported as needing a restart and the running value is kept.
 */
export const RELOADABLE_FIELDS = [
  'cache.defaultTtl',
  'cache.negativeTtl',
  'cache.heuristicFraction',
  'cache.heuristicMaxTtl',
  'cache.jitter',
  'cache.staleWhileRevalidate',
  'cache.staleIfError',
  'cache.hitForMissTtl',
  'cache.setCookie',
  'cache.honorRequestCacheControl',
  'purge.token',
  'purge.allow',
  'log.level',
  'shutdown.drainTimeout',
] as const;

export type ReloadableField = (typeof RELOADABLE_FIELDS)[number];

export interface ReloadPlan {
  /** The running config with every reloadable change applied and every other field unchanged. */
  readonly config: Config;
  /** Reloadable fields whose value changes. */
  readonly applied: readonly ReloadableField[];
  /** Fields that differ in the new config but only take effect after a restart. */
  readonly needsRestart: readonly string[];
}

export function planReload(running: Config, next: Config): ReloadPlan {
  const applied = RELOADABLE_FIELDS.filter((field) => !isDeepStrictEqual(read(running, field), read(next, field)));
  const merged = structuredClone(running) as Config;
  for (const field of applied) write(merged, field, structuredClone(read(next, field)));
  const needsRestart = differences(merged, next, '');
  return { config: merged, applied, needsRestart };
}

function read(config: Config, field: string): unknown {
  let node: unknown = config;
  for (const part of field.split('.')) node = (node as Record<string, unknown>)[part];
  return node;
}

function write(config: Config, field: string, value: unknown): void {
  const parts = field.split('.');
  let node = config as unknown as Record<string, unknown>;
  for (const part of parts.slice(0, -1)) node = node[part] as Record<string, unknown>;
  node[parts[parts.length - 1]!] = value;
}

/** Dotted paths of the leaves (or lists) that differ between two configs. */
function differences(a: unknown, b: unknown, path: string): string[] {
  const isMapping = (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value);
  if (isMapping(a) && isMapping(b)) {
    const names = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
    return [...names].flatMap((name) =>
      differences((a as Record<string, unknown>)[name], (b as Record<string, unknown>)[name], path === '' ? name : `${path}.${name}`),
    );
  }
  return isDeepStrictEqual(a, b) ? [] : [path];
}
