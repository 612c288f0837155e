import { RESP_TYPES } from 'redis';
import type { Entry } from '../proxy/cache/entry.js';
import type { PurgeSpec } from '../purge/selectors.js';
import type { RedisClient } from './connection.js';

/**
 * The shared tier's side in Redis: whole entries (metadata and body) of
 * small objects, readable by every instance, so a new instance starts warm.
 *
 * Layout, under the key prefix:
 *   shared:gen                 the generation; a purge of everything (or of a prefix) moves it on,
 *                              which makes every older entry unreachable at once (they expire)
 *   shared:<gen>:o:<key>       hash: variant -> encoded entry; expires at the latest deleteAt
 *   shared:<gen>:t:<tag>       set of keys carrying the tag
 *   shared:purged:<k|t|all>:…  when a key, a tag, or everything was last purged (Redis time, ms)
 *
 * Every step is one Lua script, so it is atomic in Redis. A write is
 * refused when what it names was purged after its origin fetch began
 * (less a margin for clock skew between hosts): a slow fetch that started
 * before a purge can never put the old content back for everyone.
 */

export interface SharedTierOptions {
  readonly client: RedisClient;
  readonly keyPrefix: string;
  /** How long purge marks are kept: longer than any origin fetch lasts. */
  readonly markTtlMs?: number;
  /** Allowance for the difference between this host's clock and Redis's. */
  readonly skewMs?: number;
}

const READ = `
local gen = redis.call('GET', KEYS[1]) or '0'
return redis.call('HGETALL', ARGV[1] .. gen .. ':o:' .. ARGV[2])`;

// ARGV: base, key, variant, payload, fetchStartedAt, deleteAt, skew, tags...
const WRITE = `
local base, key = ARGV[1], ARGV[2]
local gen = redis.call('GET', base .. 'gen') or '0'
local limit = tonumber(ARGV[5]) - tonumber(ARGV[7])
local function purgedAfter(name)
  local at = redis.call('GET', base .. 'purged:' .. name)
  return at and tonumber(at) >= limit
end
if purgedAfter('all') or purgedAfter('k:' .. key) then return 0 end
for i = 8, #ARGV do if purgedAfter('t:' .. ARGV[i]) then return 0 end end
local object = base .. gen .. ':o:' .. key
redis.call('HSET', object, ARGV[3], ARGV[4])
redis.call('PEXPIREAT', object, ARGV[6], 'NX')
redis.call('PEXPIREAT', object, ARGV[6], 'GT')
for i = 8, #ARGV do
  local tag = base .. gen .. ':t:' .. ARGV[i]
  redis.call('SADD', tag, key)
  redis.call('PEXPIREAT', tag, ARGV[6], 'NX')
  redis.call('PEXPIREAT', tag, ARGV[6], 'GT')
end
return 1`;

// ARGV: base, markTtl, everything (0|1), then "k" or "t" followed by a name, pairs.
const PURGE = `
local base, ttl = ARGV[1], ARGV[2]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if ARGV[3] == '1' then
  redis.call('INCR', base .. 'gen')
  redis.call('SET', base .. 'purged:all', now, 'PX', ttl)
end
local gen = redis.call('GET', base .. 'gen') or '0'
local removed = 0
for i = 4, #ARGV, 2 do
  local kind, name = ARGV[i], ARGV[i + 1]
  redis.call('SET', base .. 'purged:' .. kind .. ':' .. name, now, 'PX', ttl)
  if kind == 'k' then
    removed = removed + redis.call('DEL', base .. gen .. ':o:' .. name)
  else
    local set = base .. gen .. ':t:' .. name
    for _, key in ipairs(redis.call('SMEMBERS', set)) do removed = removed + redis.call('DEL', base .. gen .. ':o:' .. key) end
    redis.call('DEL', set)
  end
end
return removed`;

// ARGV: lock key, token. Only the holder's token releases the lock.
const UNLOCK = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** What the shared tier is told to purge: keys and tags by name, or everything. */
export interface SharedPurge {
  readonly keys: readonly string[];
  readonly tags: readonly string[];
  /** Everything, or something only a scan could find (a prefix, a path on every host). */
  readonly everything: boolean;
}

export class SharedTier {
  readonly #client: RedisClient;
  readonly #binary: RedisClient;
  readonly #base: string;
  readonly #markTtlMs: number;
  readonly #skewMs: number;

  constructor(options: SharedTierOptions) {
    this.#client = options.client;
    this.#binary = options.client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer }) as unknown as RedisClient;
    this.#base = `${options.keyPrefix}shared:`;
    this.#markTtlMs = options.markTtlMs ?? 3_600_000;
    this.#skewMs = options.skewMs ?? 1000;
  }

  get ready(): boolean {
    return this.#client.isReady;
  }

  /** The variants Redis holds for `key` (undecodable ones are left out). */
  async read(key: string): Promise<Entry[]> {
    const reply = (await this.#binary.sendCommand(['EVAL', READ, '1', `${this.#base}gen`, this.#base, key])) as unknown;
    const entries: Entry[] = [];
    if (!Array.isArray(reply)) return entries;
    for (let i = 1; i < reply.length; i += 2) {
      const entry = decodeEntry(reply[i] as Buffer);
      if (entry !== undefined && entry.key === key) entries.push(entry);
    }
    return entries;
  }

  /** Stores an entry whose body is in memory; answers false when a purge since `fetchStartedAt` refused it. */
  async write(entry: Entry & { body: Buffer }, fetchStartedAt: number): Promise<boolean> {
    const args = [this.#base, entry.key, entry.variant, encodeEntry(entry), String(fetchStartedAt), String(Math.ceil(entry.deleteAt)), String(this.#skewMs), ...entry.tags];
    return Number(await this.#client.sendCommand(['EVAL', WRITE, '0', ...args])) === 1;
  }

  /** Takes the fill lock for `key` unless another instance holds it; it lapses after `ttlMs` whatever happens to the holder. */
  async lock(key: string, token: string, ttlMs: number): Promise<boolean> {
    return (await this.#client.set(`${this.#base}lock:${key}`, token, { condition: 'NX', expiration: { type: 'PX', value: ttlMs } })) === 'OK';
  }

  async unlock(key: string, token: string): Promise<void> {
    await this.#client.sendCommand(['EVAL', UNLOCK, '1', `${this.#base}lock:${key}`, token]);
  }

  async locked(key: string): Promise<boolean> {
    return (await this.#client.exists(`${this.#base}lock:${key}`)) === 1;
  }

  async purge(purge: SharedPurge): Promise<number> {
    const pairs: string[] = [];
    for (const key of purge.keys) pairs.push('k', key);
    for (const tag of purge.tags) pairs.push('t', tag);
    if (!purge.everything && pairs.length === 0) return 0;
    return Number(await this.#client.sendCommand(['EVAL', PURGE, '0', this.#base, String(this.#markTtlMs), purge.everything ? '1' : '0', ...pairs]));
  }
}

/** What a purge spec means for the shared tier: named keys and tags, or (for what only a scan could find) everything. */
export function sharedPurgeOf(spec: PurgeSpec, exactKeys: readonly (string | undefined)[]): SharedPurge {
  const inexact = exactKeys.some((key) => key === undefined);
  return {
    keys: exactKeys.filter((key): key is string => key !== undefined),
    tags: [...spec.tags],
    everything: spec.all || spec.prefixes.length > 0 || inexact,
  };
}

/** u32 length of the metadata JSON, the JSON, then the body bytes. */
export function encodeEntry(entry: Entry & { body: Buffer }): Buffer {
  const { body, ...meta } = entry;
  const json = Buffer.from(JSON.stringify(meta), 'utf8');
  const header = Buffer.allocUnsafe(4);
  header.writeUInt32BE(json.length, 0);
  return Buffer.concat([header, json, body]);
}

export function decodeEntry(bytes: Buffer): Entry | undefined {
  if (!Buffer.isBuffer(bytes) || bytes.length < 4) return undefined;
  const length = bytes.readUInt32BE(0);
  if (4 + length > bytes.length) return undefined;
  let meta: Record<string, unknown>;
  try {
    meta = JSON.parse(bytes.subarray(4, 4 + length).toString('utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (!validMeta(meta)) return undefined;
  // A copy of its own: the reply buffer may be a slice of a larger one.
  const body = Buffer.from(bytes.subarray(4 + length));
  return { ...(meta as unknown as Omit<Entry, 'body'>), body };
}

const NUMBERS = ['status', 'requestTime', 'responseTime', 'initialAge', 'storedAt', 'freshUntil', 'staleWhileRevalidateUntil', 'staleIfErrorUntil', 'deleteAt', 'size'] as const;
const FLAGS = ['noCache', 'mustRevalidate', 'immutable', 'sharedWithAuthorization'] as const;
const strings = (value: unknown) => Array.isArray(value) && value.every((item) => typeof item === 'string');

/** Redis is shared with other software: an entry is served only if every field has its type. */
function validMeta(meta: Record<string, unknown>): boolean {
  if (typeof meta['key'] !== 'string' || typeof meta['variant'] !== 'string') return false;
  if (!strings(meta['vary']) || !strings(meta['tags'])) return false;
  const headers = meta['headers'];
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) return false;
  for (const value of Object.values(headers)) if (typeof value !== 'string' && !strings(value)) return false;
  for (const name of NUMBERS) if (typeof meta[name] !== 'number' || !Number.isFinite(meta[name])) return false;
  for (const name of FLAGS) if (typeof meta[name] !== 'boolean') return false;
  for (const name of ['etag', 'lastModified']) if (meta[name] !== undefined && typeof meta[name] !== 'string') return false;
  return true;
}
