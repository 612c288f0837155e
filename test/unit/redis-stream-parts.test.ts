import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { PURGE_POSITION_FILE } from '../../proxy/store/disk-files.js';
import { fileCursor } from '../../redis/cursor-file.js';
import { PurgeOutbox } from '../../redis/outbox.js';
import { decodePurge, encodePurge, PURGE_EVERYTHING } from '../../redis/purge-message.js';
import { decodeEntry, encodeEntry, sharedPurgeFor, sharedPurgeOf } from '../../redis/shared-tier.js';
import { isStreamId } from '../../redis/stream-id.js';
import { entryFields } from '../../proxy/cache/entry.js';
import { testEntry } from '../helpers/entries.js';

const tagPurge = (tag: string) => ({ spec: { urls: [], tags: [tag], prefixes: [], all: false, mode: 'hard' as const } });

describe('stream ids', () => {
  it('are two unsigned 64-bit numbers joined by a dash', () => {
    expect(isStreamId('1700000000000-3')).toBe(true);
    expect(isStreamId('18446744073709551615-18446744073709551615')).toBe(true);
    expect(isStreamId('18446744073709551616-0')).toBe(false);
    for (const bad of ['7', '7-', '-7', 'a-1', '1-2-3', '']) expect(isStreamId(bad), bad).toBe(false);
  });
});

describe('purge messages', () => {
  it('round-trip a purge and its host', () => {
    const purge = { spec: { urls: ['/a?x=1'], tags: ['t'], prefixes: ['/p/'], all: false, mode: 'soft' as const }, host: 'shop.example' };
    expect(decodePurge(encodePurge('edge-1', purge))).toEqual({ from: 'edge-1', purge });
  });

  it.each([
    [{ from: 'x', purge: '{}' }, /version/],
    [{ v: '1', purge: '{}' }, /from/],
    [{ v: '1', from: 'x', purge: 'not json' }, /not JSON/],
    [{ v: '1', from: 'x', purge: '{"spec":{"urls":[1],"tags":[],"prefixes":[],"all":false,"mode":"hard"}}' }, /urls/],
    [{ v: '1', from: 'x', purge: '{"spec":{"urls":[],"tags":[],"prefixes":[],"all":false,"mode":"gentle"}}' }, /mode/],
    [{ v: '1', from: 'x', purge: '{"spec":{"urls":[],"tags":[],"prefixes":[],"all":false,"mode":"hard"},"host":7}' }, /host/],
  ])('refuse a malformed entry with a reason: %j', (fields, reason) => {
    expect(decodePurge(fields)).toMatch(reason);
  });
});

describe('the outbox', () => {
  it('keeps purges in order up to its bound', () => {
    const outbox = new PurgeOutbox(3);
    for (const tag of ['a', 'b', 'c']) expect(outbox.push(tagPurge(tag))).toBe('queued');
    expect(outbox.peek()).toEqual(tagPurge('a'));
    outbox.shiftIf(outbox.peek()!);
    expect(outbox.peek()).toEqual(tagPurge('b'));
    expect(outbox.size).toBe(2);
  });

  it('folds into one purge of everything when full, losing no purge', () => {
    const outbox = new PurgeOutbox(2);
    outbox.push(tagPurge('a'));
    outbox.push(tagPurge('b'));
    expect(outbox.push(tagPurge('c'))).toBe('folded');
    expect(outbox.size).toBe(1);
    expect(outbox.peek()).toBe(PURGE_EVERYTHING);
    expect(PURGE_EVERYTHING.spec).toMatchObject({ all: true, mode: 'hard' });
  });

  it('keeps the purge of everything when the queue folded while its head was being published', () => {
    const outbox = new PurgeOutbox(2);
    outbox.push(tagPurge('a'));
    outbox.push(tagPurge('b'));
    const publishing = outbox.peek()!;
    // While 'a' is on its way to Redis, a purge arrives and the full queue folds.
    expect(outbox.push(tagPurge('c'))).toBe('folded');
    outbox.shiftIf(publishing);
    expect(outbox.peek()).toBe(PURGE_EVERYTHING);
    expect(outbox.size).toBe(1);
  });
});

describe('the position file', () => {
  it('keeps the last position across instances of the store', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lacquer-position-'));
    expect(fileCursor(dir).load()).toBeUndefined();
    fileCursor(dir).save({ epoch: 'e1', id: '1700000000000-3' });
    expect(fileCursor(dir).load()).toEqual({ epoch: 'e1', id: '1700000000000-3' });
  });

  it('reads a damaged file as a position of no epoch, which the relay treats as a reset (purge everything)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lacquer-position-'));
    writeFileSync(join(dir, PURGE_POSITION_FILE), '{"epoch":');
    expect(fileCursor(dir).load()).toEqual({ epoch: '', id: '0-0' });
  });
});

describe('what a purge means for the shared tier', () => {
  const spec = { urls: [], tags: [], prefixes: [], all: false, mode: 'hard' as const };

  it('names keys and tags when every URL names one key', () => {
    expect(sharedPurgeOf({ ...spec, urls: ['http://a.example/x'], tags: ['t'] }, ['a.example/x'])).toEqual({ keys: ['a.example/x'], tags: ['t'], everything: false });
  });

  it('retires everything for what only a scan could find: a prefix, a path on every host, or all', () => {
    expect(sharedPurgeOf({ ...spec, prefixes: ['/p/'] }, []).everything).toBe(true);
    expect(sharedPurgeOf({ ...spec, urls: ['/x'] }, [undefined]).everything).toBe(true);
    expect(sharedPurgeOf({ ...spec, all: true }, []).everything).toBe(true);
  });

  it('a hard purge removes; a soft one carries the time it marks stale at, and for a scan, which keys it covers', () => {
    const key = defaults().key;
    expect(sharedPurgeFor({ spec: { ...spec, tags: ['t'] } }, key, 5)).toEqual({ keys: [], tags: ['t'], everything: false });
    const soft = { ...spec, mode: 'soft' as const };
    expect(sharedPurgeFor({ spec: { ...soft, urls: ['http://a.example/x'] } }, key, 5)).toMatchObject({ keys: ['a.example/x'], everything: false, soft: { now: 5 } });
    expect(sharedPurgeFor({ spec: { ...soft, all: true } }, key, 5).soft).toEqual({ now: 5 });
    const scanned = sharedPurgeFor({ spec: { ...soft, urls: ['/x'], prefixes: ['/p/'] } }, key, 5);
    expect(scanned.everything).toBe(true);
    const matches = scanned.soft!.matches!;
    expect(['a.example/x', 'b.example/x', 'a.example/p/1', 'a.example/y', 'a.example/xy'].map(matches)).toEqual([true, true, true, false, false]);
    // The PURGE method fixes the host of bare paths.
    const onHost = sharedPurgeFor({ spec: { ...soft, prefixes: ['/p/'] }, host: 'a.example' }, key, 5).soft!.matches!;
    expect(['a.example/p/1', 'b.example/p/1'].map(onHost)).toEqual([true, false]);
  });
});

describe('shared entries', () => {
  it('round-trip with their body, and anything else reads as no entry', () => {
    const entry = testEntry({ key: 'a.example/x', tags: ['t'], body: Buffer.from([0, 1, 255]) }) as Parameters<typeof encodeEntry>[0];
    expect(entryFields(decodeEntry(encodeEntry(entry))!)).toEqual(entryFields(entry));
    expect(decodeEntry(Buffer.from('nonsense'))).toBeUndefined();
    expect(decodeEntry(Buffer.concat([Buffer.from([0, 0, 0, 12]), Buffer.from('{"key":"k"}x')]))).toBeUndefined();
  });
});
