import type { RelayedPurge } from '../purge/purger.js';
import type { PurgeSpec } from '../purge/selectors.js';

/**
 * A purge as one Redis Stream entry: the instance that made it, and the
 * purge as JSON. Entries come from other processes (other versions, maybe
 * other deployments by mistake), so decoding checks every field and
 * answers a reason instead of throwing.
 */

export interface StreamPurge {
  readonly from: string;
  readonly purge: RelayedPurge;
}

/** Bumped when the entry's meaning changes; an entry of another version is refused, not guessed at. */
export const MESSAGE_VERSION = '1';

export function encodePurge(from: string, purge: RelayedPurge): Record<string, string> {
  return { v: MESSAGE_VERSION, from, purge: JSON.stringify(purge) };
}

export function decodePurge(fields: Readonly<Record<string, unknown>>): StreamPurge | string {
  if (fields['v'] !== MESSAGE_VERSION) return `unknown message version ${JSON.stringify(fields['v'])}`;
  const from = fields['from'];
  if (typeof from !== 'string' || from === '') return 'no "from" field';
  const text = fields['purge'];
  if (typeof text !== 'string') return 'no "purge" field';
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return 'the "purge" field is not JSON';
  }
  if (typeof value !== 'object' || value === null) return 'the purge is not an object';
  const { spec, host } = value as { spec?: unknown; host?: unknown };
  if (host !== undefined && typeof host !== 'string') return 'the purge host is not a string';
  const checked = checkSpec(spec);
  if (typeof checked === 'string') return checked;
  return { from, purge: host === undefined ? { spec: checked } : { spec: checked, host } };
}

function checkSpec(spec: unknown): PurgeSpec | string {
  if (typeof spec !== 'object' || spec === null) return 'the purge has no spec';
  const { urls, tags, prefixes, all, mode } = spec as Record<string, unknown>;
  for (const [name, list] of [['urls', urls], ['tags', tags], ['prefixes', prefixes]] as const) {
    if (!Array.isArray(list) || !list.every((item) => typeof item === 'string')) return `the spec's ${name} is not a list of strings`;
  }
  if (typeof all !== 'boolean') return "the spec's all is not true or false";
  if (mode !== 'hard' && mode !== 'soft') return "the spec's mode is not hard or soft";
  return { urls: urls as string[], tags: tags as string[], prefixes: prefixes as string[], all, mode };
}

/** What a purge of everything looks like when it stands in for purges that cannot be known. */
export const PURGE_EVERYTHING: RelayedPurge = Object.freeze({ spec: Object.freeze({ urls: [], tags: [], prefixes: [], all: true, mode: 'hard' as const }) });
