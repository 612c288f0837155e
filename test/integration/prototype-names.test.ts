import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { requestChannel, type RequestEvent } from '../../proxy/events.js';
import type { TieredStore } from '../../proxy/store/tiered.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { startRawOrigin, type RawOrigin } from '../helpers/raw-origin.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * Header fields named after Object.prototype's members (`__proto__`,
 * `constructor`, `toString`, `hasOwnProperty`) are ordinary fields to HTTP.
 * Copied into a plain object with `obj[name] = value`, `__proto__` calls the
 * prototype setter instead: a string is dropped, and an array (a repeated
 * field) becomes the copy's prototype, whose elements then show up as
 * fields named "0", "1", … These tests send such fields both ways, over
 * real sockets, through every path a response takes.
 */

const root = tempDir('lacquer-proto-names-');
let dirs = 0;
const open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const item of open.splice(0).reverse()) await item.close();
});

/** The odd fields every response below carries, as the origin sends them. */
const ODD_LINES = ['__proto__: x', 'constructor: y', 'toString: z', 'hasOwnProperty: w'];
const ODD_FIELDS: [string, string][] = [
  ['__proto__', 'x'],
  ['constructor', 'y'],
  ['tostring', 'z'],
  ['hasownproperty', 'w'],
];

interface Origin extends RawOrigin {
  /** Every request head the origin received, in arrival order. */
  readonly heads: string[];
}

/**
 * An origin that writes its header lines byte for byte. A path with a
 * `/plain/` segment answers without the odd fields, any other with them; `/no-store/…` is not
 * cacheable; `/repeated/…` sends `__proto__` twice; `/vary/…` varies on
 * `__proto__` and echoes the request's value in the body (`/echo/…` echoes
 * it without varying); `/reval/…` is
 * stored stale and revalidated (see revalidation).
 */
async function startOrigin(): Promise<Origin> {
  const heads: string[] = [];
  const origin = await startRawOrigin((socket, _count, head) => {
    heads.push(head);
    const path = head.slice(head.indexOf(' ') + 1, head.indexOf(' ', head.indexOf(' ') + 1));
    if (path.startsWith('/reval/')) {
      socket.end(revalidation(path, requestField(head, 'if-none-match') !== undefined));
      return;
    }
    const lines = ['HTTP/1.1 200 OK', 'Content-Type: text/plain', 'X-Other: o'];
    lines.push(path.startsWith('/no-store/') ? 'Cache-Control: no-store' : 'Cache-Control: max-age=600');
    let body = 'ok';
    if (path.startsWith('/repeated/')) lines.push('__proto__: a', '__proto__: b');
    else if (!path.includes('/plain/')) lines.push(...ODD_LINES);
    if (path.startsWith('/vary/') || path.startsWith('/echo/')) body = `proto=${requestField(head, '__proto__') ?? '(none)'}`;
    if (path.startsWith('/vary/')) lines.push('Vary: __proto__');
    lines.push(`Content-Length: ${body.length}`, 'Connection: close');
    socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  });
  const started = { ...origin, heads };
  open.push(started);
  return started;
}

/**
 * Under `/reval/`, a 200 without the odd fields that is stale at once
 * (revalidated on every use: must-revalidate), with an ETag; a request
 * carrying our validator gets a 304 that adds the odd fields and lets the
 * entry be kept (`/reval/keep/…`) or not (`/reval/drop/…`).
 */
function revalidation(path: string, conditional: boolean): string {
  const lines = conditional
    ? ['HTTP/1.1 304 Not Modified', 'ETag: "v1"', path.startsWith('/reval/keep/') ? 'Cache-Control: max-age=600' : 'Cache-Control: no-store', ...ODD_LINES, 'Connection: close']
    : ['HTTP/1.1 200 OK', 'Content-Type: text/plain', 'X-Other: o', 'ETag: "v1"', 'Cache-Control: max-age=0, must-revalidate', 'Content-Length: 2', 'Connection: close'];
  return `${lines.join('\r\n')}\r\n\r\n${conditional ? '' : 'ok'}`;
}

/** The value of a field in a raw request head (the last one if repeated), case-insensitively. */
function requestField(head: string, name: string): string | undefined {
  let found: string | undefined;
  for (const line of head.split('\r\n').slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === name) found = line.slice(colon + 1).trim();
  }
  return found;
}

interface RawResponse {
  readonly status: number;
  /** Every header line as [lower-case name, value], in the order sent. */
  readonly fields: [string, string][];
  readonly body: string;
}

/** Sends a GET with exactly these header lines (plus Host and Connection: close) and reads the answer as bytes. */
function rawGet(url: string, path: string, lines: readonly string[] = []): Promise<RawResponse> {
  const { hostname, port } = new URL(url);
  const text = [`GET ${path} HTTP/1.1`, 'Host: cache.test', ...lines, 'Connection: close', '', ''].join('\r\n');
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('end', () => {
      const raw = Buffer.concat(chunks).toString('latin1');
      const split = raw.indexOf('\r\n\r\n');
      const [statusLine = '', ...headerLines] = raw.slice(0, split).split('\r\n');
      const fields = headerLines.map((line): [string, string] => {
        const colon = line.indexOf(':');
        return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
      });
      resolve({ status: Number(statusLine.split(' ')[1]), fields, body: raw.slice(split + 4) });
    });
  });
}

function values(response: RawResponse, name: string): string[] {
  return response.fields.filter(([field]) => field === name).map(([, value]) => value);
}

function names(response: RawResponse): string[] {
  return response.fields.map(([name]) => name).sort();
}

/**
 * The answer carries each odd field once with the origin's value, and
 * exactly the fields the same answer without them carries: none appear and
 * none go missing because of them.
 */
function expectOddFieldsIntact(response: RawResponse, plain: RawResponse): void {
  expect(response.status).toBe(200);
  for (const [name, value] of ODD_FIELDS) expect(values(response, name), name).toEqual([value]);
  expect(names(response)).toEqual([...names(plain), ...ODD_FIELDS.map(([name]) => name)].sort());
  expect(values(response, 'x-other')).toEqual(['o']);
  expect(values(response, 'content-type')).toEqual(['text/plain']);
}

async function proxy(originUrl: string, cacheDir?: string, keyHeaders?: string[]): Promise<TestProxy> {
  const started = await startProxy(originUrl, { ...(cacheDir !== undefined && { cacheDir }), ...(keyHeaders !== undefined && { config: { key: { headers: keyHeaders } } }) });
  open.push(started);
  return started;
}

describe('response fields named after Object.prototype members', () => {
  it('reach the client unchanged on a miss, a fast hit and a hit through the general path', async () => {
    const origin = await startOrigin();
    const p = await proxy(origin.url);
    const plain = await rawGet(p.url, '/plain/a');
    expect(values(plain, 'cache-status')[0]).toContain('fwd=uri-miss');

    const miss = await rawGet(p.url, '/cached/a');
    expect(values(miss, 'cache-status')[0]).toContain('fwd=uri-miss');
    expectOddFieldsIntact(miss, plain);
    expect(miss.body).toBe('ok');

    const plainHit = await rawGet(p.url, '/plain/a');
    const hit = await rawGet(p.url, '/cached/a');
    expect(values(hit, 'cache-status')[0]).toContain('hit');
    expectOddFieldsIntact(hit, plainHit);

    // A validator that matches nothing sends the hit through the flow rather than the fast path.
    const plainGeneral = await rawGet(p.url, '/plain/a', ['If-None-Match: "other"']);
    const general = await rawGet(p.url, '/cached/a', ['If-None-Match: "other"']);
    expect(values(general, 'cache-status')[0]).toContain('hit');
    expectOddFieldsIntact(general, plainGeneral);
    expect(origin.hits()).toBe(2);
  });

  it('reach the client unchanged on pass-through of an answer that may not be stored', async () => {
    const origin = await startOrigin();
    const p = await proxy(origin.url);
    const plain = await rawGet(p.url, '/no-store/plain/a');
    expect(values(plain, 'cache-status')[0]).toContain('detail=no-store');
    const passed = await rawGet(p.url, '/no-store/a');
    expect(values(passed, 'cache-status')[0]).toContain('detail=no-store');
    expectOddFieldsIntact(passed, plain);
    const again = await rawGet(p.url, '/no-store/a');
    expectOddFieldsIntact(again, plain);
    expect(origin.hits()).toBe(3);
  });

  it('reach the client unchanged from the disk tier after a restart, and from memory once promoted', async () => {
    const origin = await startOrigin();
    const dir = join(root, String(dirs++));
    const before = await proxy(origin.url, dir);
    const plain = await rawGet(before.url, '/plain/disk');
    expectOddFieldsIntact(await rawGet(before.url, '/cached/disk'), plain);
    await before.close();
    open.splice(open.indexOf(before), 1);

    const after = await proxy(origin.url, dir);
    const store = after.store as TieredStore;
    await store.ready;
    expect(store.memory.stats().entries).toBe(0);
    const plainFromDisk = await rawGet(after.url, '/plain/disk');
    const fromDisk = await rawGet(after.url, '/cached/disk');
    expect(values(fromDisk, 'cache-status')[0]).toContain('hit');
    expectOddFieldsIntact(fromDisk, plainFromDisk);
    await expect.poll(() => store.memory.stats().entries).toBe(2);
    const fromMemory = await rawGet(after.url, '/cached/disk');
    expect(values(fromMemory, 'cache-status')[0]).toContain('hit');
    expectOddFieldsIntact(fromMemory, plainFromDisk);
    expect(origin.hits()).toBe(2);
  });

  it('reach the client when a 304 adds them to a stored entry, whether the entry is kept or not', async () => {
    const origin = await startOrigin();
    const p = await proxy(origin.url);
    for (const path of ['/reval/keep/a', '/reval/drop/a']) {
      const stored = await rawGet(p.url, path);
      expect(values(stored, 'cache-status')[0]).toContain('stored');
      expect(values(stored, '__proto__')).toEqual([]);
      const revalidated = await rawGet(p.url, path);
      expect(values(revalidated, 'cache-status')[0], path).toContain('fwd=stale; fwd-status=304');
      expectOddFieldsIntact(revalidated, stored);
      expect(revalidated.body).toBe('ok');
    }
    // The kept entry answers from the cache with the fields the 304 gave it.
    const hit = await rawGet(p.url, '/reval/keep/a');
    expect(values(hit, 'cache-status')[0]).toContain('hit');
    expect(values(hit, '__proto__')).toEqual(['x']);
    expect(origin.hits()).toBe(4);
  });

  it('shows them in the request event of a fast hit', async () => {
    const origin = await startOrigin();
    const p = await proxy(origin.url);
    await rawGet(p.url, '/cached/event');
    const events: RequestEvent[] = [];
    const listener = (message: unknown) => events.push(message as RequestEvent);
    subscribe(requestChannel.name, listener);
    try {
      expect(values(await rawGet(p.url, '/cached/event'), 'cache-status')[0]).toContain('hit');
    } finally {
      unsubscribe(requestChannel.name, listener);
    }
    expect(events).toHaveLength(1);
    const headers = events[0]!.delivery.headers;
    expect(Object.getPrototypeOf(headers)).toBe(Object.prototype);
    for (const [name, value] of ODD_FIELDS) expect(Object.getOwnPropertyDescriptor(headers, name)?.value, name).toBe(value);
  });

  it('keeps a repeated __proto__ field as one field, never as fields named "0" and "1"', async () => {
    const origin = await startOrigin();
    const p = await proxy(origin.url);
    for (const expected of ['fwd=uri-miss', 'hit']) {
      const response = await rawGet(p.url, '/repeated/a');
      expect(values(response, 'cache-status')[0]).toContain(expected);
      // undici joins nothing: a repeated field is passed on as repeated lines, or as one line joined with ", ".
      expect(values(response, '__proto__').join(', ')).toBe('a, b');
      expect(values(response, '0')).toEqual([]);
      expect(values(response, '1')).toEqual([]);
      expect(values(response, 'x-other')).toEqual(['o']);
    }
    expect(origin.hits()).toBe(1);
  });
});

describe('request fields named after Object.prototype members', () => {
  it('reach the origin unchanged on a miss and on pass-through', async () => {
    const origin = await startOrigin();
    const p = await proxy(origin.url);
    const lines = ['__proto__: q', 'Constructor: r', 'toString: s'];
    await rawGet(p.url, '/cached/req', lines);
    await rawGet(p.url, '/no-store/req', lines);
    expect(origin.heads).toHaveLength(2);
    for (const head of origin.heads) {
      expect(requestField(head, '__proto__')).toBe('q');
      expect(requestField(head, 'constructor')).toBe('r');
      expect(requestField(head, 'tostring')).toBe('s');
      expect(requestField(head, 'hasownproperty')).toBeUndefined();
      expect(requestField(head, 'x-other')).toBeUndefined();
    }
  });

  it('select the variant of a response that varies on __proto__, on the fast path and the general one', async () => {
    const origin = await startOrigin();
    const p = await proxy(origin.url);
    const a = await rawGet(p.url, '/vary/x', ['__proto__: a']);
    expect(a.body).toBe('proto=a');
    const b = await rawGet(p.url, '/vary/x', ['__proto__: b']);
    expect(b.body).toBe('proto=b');
    const none = await rawGet(p.url, '/vary/x');
    expect(none.body).toBe('proto=(none)');
    expect(origin.hits()).toBe(3);

    for (const [lines, body] of [
      [['__proto__: a'], 'proto=a'],
      [['__proto__: b'], 'proto=b'],
      [['__PROTO__: b'], 'proto=b'],
      [[], 'proto=(none)'],
      [['__proto__: a', 'If-None-Match: "other"'], 'proto=a'],
    ] as const) {
      const hit = await rawGet(p.url, '/vary/x', lines);
      expect(hit.body, lines.join(' ')).toBe(body);
      expect(values(hit, 'cache-status')[0]).toContain('hit');
    }
    expect(origin.hits()).toBe(3);
  });

  it('key requests by a __proto__ field when the key names it, on every path', async () => {
    const origin = await startOrigin();
    const p = await proxy(origin.url, undefined, ['__proto__']);
    expect((await rawGet(p.url, '/echo/k', ['__proto__: a'])).body).toBe('proto=a');
    expect((await rawGet(p.url, '/echo/k')).body).toBe('proto=(none)');
    expect((await rawGet(p.url, '/echo/k', ['__proto__: b'])).body).toBe('proto=b');
    expect(origin.hits()).toBe(3);
    for (const [lines, body] of [
      [['__proto__: a'], 'proto=a'],
      [[], 'proto=(none)'],
      [['__proto__: b'], 'proto=b'],
    ] as const) {
      const hit = await rawGet(p.url, '/echo/k', lines);
      expect(hit.body, lines.join(' ')).toBe(body);
      expect(values(hit, 'cache-status')[0]).toContain('hit');
    }
    expect(origin.hits()).toBe(3);
  });
});
