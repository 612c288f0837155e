import { RESP_TYPES } from 'redis';
import { entryMeta, withBody, type Entry } from '../proxy/cache/entry.js';
import type { KeyOptions } from '../config/types.js';
import type { RelayedPurge } from '../purge/purger.js';
import { exactKey, keyMatcher, parseTarget, type PathTarget, type PurgeSpec } from '../purge/selectors.js';
import { softPurged } from '../purge/soft.js';
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
 *   shared:lock:<key>          the fill lock (redis.shared.lockTtl): the token of the instance fetching the key
 *   shared:fills               pub/sub channel: a key whose fill lock was just released
 *
 * Every step is one Lua script, so it is atomic in Redis. A write is
 * refused when what it names was purged after its origin fetch began
 * (less a margin for clock skew between hosts): a slow fetch that started
 * before a purge can never put the old content back for everyone.
 *
 * A soft purge sets the same marks but removes nothing: each entry it names
 * is read, marked stale here as the local tiers mark theirs (purge/soft.ts),
 * and put back only if it is still the copy that was read, so a newer copy
 * stored meanwhile by another instance is never overwritten. A copy whose
 * fetch began after the purge (by the rule a write is let in by) is newer
 * than what was purged and is not marked at all.
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

// ARGV: base, markTtl, everything (0|1), then "k" or "t" followed by a name, pairs.
// Answers the generation, then the keys the named tags' sets hold.
const MARK = `
local base, ttl = ARGV[1], ARGV[2]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
if ARGV[3] == '1' then redis.call('SET', base .. 'purged:all', now, 'PX', ttl) end
local gen = redis.call('GET', base .. 'gen') or '0'
local answer = { gen }
for i = 4, #ARGV, 2 do
  local kind, name = ARGV[i], ARGV[i + 1]
  redis.call('SET', base .. 'purged:' .. kind .. ':' .. name, now, 'PX', ttl)
  if kind == 't' then
    for _, key in ipairs(redis.call('SMEMBERS', base .. gen .. ':t:' .. name)) do answer[#answer + 1] = key end
  end
end
return answer`;

// KEYS: object. Answers, per variant: its name, the head of its payload (length and metadata,
// without the body, which need not cross the network) and the SHA-1 of the whole payload.
const READ_HEADS = `
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local payload = all[i + 1]
  local head = ''
  if #payload >= 4 then head = string.sub(payload, 1, 4 + struct.unpack('>I4', payload)) end
  out[#out + 1] = all[i]
  out[#out + 1] = head
  out[#out + 1] = redis.sha1hex(payload)
end
return out`;

// KEYS: object. ARGV: variant, SHA-1 of the payload read, new head ('' to remove the variant).
// Changes the variant only while it still holds the payload that was read; the body stays.
const REPLACE_HEAD = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current or redis.sha1hex(current) ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. string.sub(current, 5 + struct.unpack('>I4', current)))
end
return 1`;

/** Keys handled per SCAN step when a soft purge looks through every entry. */
const SCAN_COUNT = 500;

// KEYS: lock key. ARGV: token, channel, key. Only the holder's token releases the lock;
// the release is published in the same step, so an instance waiting for the copy looks once, now (fill-notices.ts).
const UNLOCK = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1`;

/** What the shared tier is told to purge: keys and tags by name, or everything. */
export interface SharedPurge {
  readonly keys: readonly string[];
  readonly tags: readonly string[];
  /** Everything, or something only a scan could find (a prefix, a path on every host). */
  readonly everything: boolean;
  /** A soft purge: entries are marked stale at `now` (this host's clock, as the local tiers' purge) instead of removed. */
  readonly soft?: SoftScope;
}

export interface SoftScope {
  readonly now: number;
  /**
   * Which keys `everything` stands for (a prefix, a path on every host);
   * absent: every key. A hard purge retires them all at once with a new
   * generation; marking stale needs to find each one.
   */
  readonly matches?: (key: string) => boolean;
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

  /** Releases the lock if `token` still holds it, and tells the instances waiting on it (on `fillChannel`). */
  async unlock(key: string, token: string): Promise<void> {
    await this.#client.sendCommand(['EVAL', UNLOCK, '1', `${this.#base}lock:${key}`, token, this.fillChannel, key]);
  }

  /** How long the fill lock of `key` has left to live, in ms; 0 when no one holds it. */
  async lockLeft(key: string): Promise<number> {
    const left = await this.#client.pTTL(`${this.#base}lock:${key}`);
    // -2: no lock. -1: a lock without expiry, which Lacquer never sets: the waiter's own bound applies.
    return left === -1 ? Number.POSITIVE_INFINITY : Math.max(0, left);
  }

  /** The pub/sub channel on which releases of fill locks are published, each message a key. */
  get fillChannel(): string {
    return `${this.#base}fills`;
  }

  /** Removes (or, soft, marks stale) what `purge` names; answers how many keys (soft: variants) it changed. */
  async purge(purge: SharedPurge): Promise<number> {
    const pairs: string[] = [];
    for (const key of purge.keys) pairs.push('k', key);
    for (const tag of purge.tags) pairs.push('t', tag);
    if (!purge.everything && pairs.length === 0) return 0;
    const args = [this.#base, String(this.#markTtlMs), purge.everything ? '1' : '0', ...pairs];
    if (purge.soft !== undefined) return this.#softPurge(purge, purge.soft, args);
    return Number(await this.#client.sendCommand(['EVAL', PURGE, '0', ...args]));
  }

  /**
   * Marks first (so a fetch that began before this purge cannot store the
   * old content fresh again), then marks stale every variant named: all
   * variants of named or matching keys, and the variants carrying a named
   * tag (as the local purge does). Keys go one at a time; a purge of
   * everything walks the generation with SCAN, never one blocking command.
   */
  async #softPurge(purge: SharedPurge, scope: SoftScope, args: readonly string[]): Promise<number> {
    const reply = (await this.#client.sendCommand(['EVAL', MARK, '0', ...args])) as unknown;
    if (!Array.isArray(reply) || reply.length === 0) throw new Error('the shared tier answered a soft purge with no generation');
    const [generation, ...tagged] = reply.map(String);
    const objects = `${this.#base}${generation}:o:`;
    const tags = new Set(purge.tags);
    // Whole keys: every variant. Keys found through a tag: the variants that carry it.
    const whole = new Set(purge.keys);
    const byTag = [...new Set(tagged)].filter((key) => !whole.has(key));
    let marked = 0;
    marked += await this.#markAll([...whole].map((key) => objects + key), scope.now, undefined);
    marked += await this.#markAll(byTag.map((key) => objects + key), scope.now, tags);
    if (!purge.everything) return marked;
    const pattern = `${globEscape(objects)}*`;
    for await (const batch of this.#client.scanIterator({ MATCH: pattern, COUNT: SCAN_COUNT })) {
      const chosen = (batch as unknown as string[]).filter((object) => {
        const key = object.slice(objects.length);
        return !whole.has(key) && (scope.matches === undefined || scope.matches(key));
      });
      marked += await this.#markAll(chosen, scope.now, undefined);
    }
    return marked;
  }

  /** Marks stored keys stale, a batch at a time: the client pipelines a batch's commands in one round trip. */
  async #markAll(objects: readonly string[], now: number, tags: ReadonlySet<string> | undefined): Promise<number> {
    let marked = 0;
    for (let i = 0; i < objects.length; i += SCAN_COUNT) {
      const counts = await Promise.all(objects.slice(i, i + SCAN_COUNT).map((object) => this.#markStale(object, now, tags)));
      for (const count of counts) marked += count;
    }
    return marked;
  }

  /** Marks the variants of one stored key stale (only those carrying one of `tags`, when given); answers how many. */
  async #markStale(object: string, now: number, tags: ReadonlySet<string> | undefined): Promise<number> {
    const reply = (await this.#binary.sendCommand(['EVAL', READ_HEADS, '1', object])) as unknown;
    if (!Array.isArray(reply)) return 0;
    const replacing: Promise<unknown>[] = [];
    for (let i = 0; i + 2 < reply.length; i += 3) {
      const [variant, head, sha] = [reply[i] as Buffer, reply[i + 1] as Buffer, String(reply[i + 2])];
      // The head decodes (and is checked field by field) as an entry with an empty body; what does not is never served (read() skips it), so there is nothing to mark.
      const entry = decodeEntry(head);
      if (entry === undefined || (tags !== undefined && !entry.tags.some((tag) => tags.has(tag)))) continue;
      // Fetched after the purge (stored while its scan went on): newer than what was purged. The rule WRITE lets it in by, skew and all.
      if (entry.requestTime - this.#skewMs > now) continue;
      const stale = softPurged(entry, now);
      if (stale === entry) continue;
      // Nothing left to serve (no grace, no validators): the variant goes, as the local tiers drop it at their next lookup.
      const next = stale.deleteAt <= now ? '' : encodeEntry(withBody(stale, Buffer.alloc(0)) as Entry & { body: Buffer });
      replacing.push(this.#binary.sendCommand(['EVAL', REPLACE_HEAD, '1', object, variant, sha, next]));
    }
    let marked = 0;
    for (const changed of await Promise.all(replacing)) marked += Number(changed);
    return marked;
  }
}

/** `text` matched literally by a SCAN pattern (a key prefix may hold glob characters). */
function globEscape(text: string): string {
  return text.replace(/[\\*?[\]]/g, (char) => `\\${char}`);
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

/**
 * The shared tier's part of a relayed purge: the keys its URLs name
 * exactly, its tags, and for a soft purge the time it marks stale at and
 * which keys a scan should mark (the local purge's own matcher).
 */
export function sharedPurgeFor(purge: RelayedPurge, keyOptions: KeyOptions, now: number): SharedPurge {
  const parse = (text: string) => parseTarget(text, keyOptions, purge.host);
  const urls = purge.spec.urls.map(parse);
  const exact = urls.map((target) => (typeof target === 'string' ? undefined : exactKey(target, keyOptions)));
  const shared = sharedPurgeOf(purge.spec, exact);
  if (purge.spec.mode !== 'soft') return shared;
  if (purge.spec.all) return { ...shared, soft: { now } };
  // The purger validated the spec before relaying it: what does not parse names nothing.
  const targets = (list: readonly (PathTarget | string)[]) => list.filter((target): target is PathTarget => typeof target !== 'string');
  const inexact = targets(urls).filter((target) => exactKey(target, keyOptions) === undefined);
  return { ...shared, soft: { now, matches: keyMatcher(inexact, targets(purge.spec.prefixes.map(parse))) } };
}

/** u32 length of the metadata JSON, the JSON, then the body bytes. */
export function encodeEntry(entry: Entry & { body: Buffer }): Buffer {
  const body = entry.body;
  const json = Buffer.from(JSON.stringify(entryMeta(entry)), 'utf8');
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
  return withBody(meta as unknown as Omit<Entry, 'body'>, body);
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
