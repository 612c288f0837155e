import { describe, expect, it } from 'vitest';
import { parseExplainQuery } from '../../metrics/admin-routes.js';
import { freshenedHeaders } from '../../proxy/cache/conditional.js';
import { judgeResponse } from '../../proxy/cache/policy.js';
import { defaults } from '../../config/schema.js';
import { hasField, restoreProtoField, setField, type HeaderMap } from '../../proxy/http/headers.js';
import { downstreamResponseHeaders, headersOriginSees, upstreamRequestHeaders } from '../../proxy/upstream/forward-headers.js';
import { interimToForward } from '../../proxy/upstream/interim.js';

/**
 * Header objects as undici hands them over: a field named `__proto__` is an
 * own property (JSON.parse makes one the same way), never the prototype.
 */
function fields(json: string): HeaderMap {
  return JSON.parse(json) as HeaderMap;
}

/** The object is an ordinary one whose prototype nobody replaced, with exactly these own fields. */
function expectFields(headers: object, expected: Record<string, unknown>): void {
  expect(Object.getPrototypeOf(headers)).toBe(Object.prototype);
  expect(Object.fromEntries(Object.keys(headers).map((name) => [name, (headers as Record<string, unknown>)[name]]))).toEqual(expected);
  const enumerated: string[] = [];
  for (const name in headers) enumerated.push(name);
  expect(enumerated.sort()).toEqual(Object.keys(expected).sort());
}

describe('header fields named after Object.prototype members', () => {
  it('setField keeps __proto__ as an own field, a string or an array, and leaves the prototype alone', () => {
    const headers: HeaderMap = {};
    setField(headers, '__proto__', ['a', 'b']);
    setField(headers, 'constructor', 'c');
    expectFields(headers, { ['__proto__']: ['a', 'b'], constructor: 'c' });
    setField(headers, '__proto__', 'x');
    expect(Object.getOwnPropertyDescriptor(headers, '__proto__')?.value).toBe('x');
  });

  it('hasField answers false for absent names that Object.prototype has', () => {
    const headers: HeaderMap = { accept: '*/*' };
    for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) expect(hasField(headers, name)).toBe(false);
    expect(hasField(fields('{"constructor":"y","__proto__":["a"]}'), 'constructor')).toBe(true);
    expect(hasField(fields('{"constructor":"y","__proto__":["a"]}'), '__proto__')).toBe(true);
  });

  it('puts back a request __proto__ field Node dropped, joining repeated lines, in any case', () => {
    const headers: HeaderMap = { host: 'a.test' };
    restoreProtoField(headers, ['Host', 'a.test', '__proto__', 'x', '__PROTO__', 'y', 'Accept', '*/*']);
    expectFields(headers, { host: 'a.test', ['__proto__']: 'x, y' });
    const untouched: HeaderMap = { host: 'a.test' };
    restoreProtoField(untouched, ['Host', 'a.test', 'constructo', 'z']);
    expectFields(untouched, { host: 'a.test' });
  });

  it('forwards __proto__ both ways without losing it or taking on fields from it', () => {
    const response = downstreamResponseHeaders(fields('{"__proto__":["a","b"],"constructor":"y","connection":"close"}'), '1.1 lacquer');
    expectFields(response, { ['__proto__']: ['a', 'b'], constructor: 'y', via: '1.1 lacquer' });
    const request = upstreamRequestHeaders(fields('{"__proto__":"q","host":"a.test"}'), {
      clientIp: '127.0.0.1',
      protocol: 'http',
      host: 'a.test',
      via: '1.1 lacquer',
      upstreamHost: 'origin.test',
      strip: [],
      surrogateCapability: 'lacquer="Surrogate/1.0"',
    });
    expect(Object.getOwnPropertyDescriptor(request, '__proto__')?.value).toBe('q');
    expect(Object.getPrototypeOf(request)).toBe(Object.prototype);
  });

  it('a stripped field named like a prototype member is removed only when the request has it', () => {
    const without: HeaderMap = { host: 'a.test' };
    expect(headersOriginSees(without, ['constructor', '__proto__'])).toBe(without);
    const withBoth = fields('{"host":"a.test","constructor":"y","__proto__":"x"}');
    expectFields(headersOriginSees(withBoth, ['constructor', '__proto__']), { host: 'a.test' });
  });

  it('stores __proto__ with the rest of a storable response', () => {
    const verdict = judgeResponse(
      { requestMethod: 'GET', requestHeaders: {}, status: 200, headers: fields('{"__proto__":["a","b"],"cache-control":"max-age=60"}'), requestTime: 0, responseTime: 0 },
      { cache: defaults().cache, tags: defaults().tags, keepWithValidators: 0, random: () => 0.5 },
    );
    expect(verdict.store).toBe(true);
    if (verdict.store) expectFields(verdict.plan.headers, { ['__proto__']: ['a', 'b'], 'cache-control': 'max-age=60' });
  });

  it('freshens stored headers with a 304 that carries __proto__', () => {
    expectFields(freshenedHeaders({ 'cache-control': 'max-age=1' }, fields('{"__proto__":["a","b"],"cache-control":"max-age=5"}')), { ['__proto__']: ['a', 'b'], 'cache-control': 'max-age=5' });
    expectFields(freshenedHeaders(fields('{"__proto__":"old"}'), fields('{"__proto__":"new"}')), { ['__proto__']: 'new' });
  });

  it('forwards __proto__ in early hints', () => {
    const forward = interimToForward(103, fields('{"link":"</a.css>; rel=preload","__proto__":"x"}'));
    expect(forward.kind).toBe('early-hints');
    if (forward.kind === 'early-hints') expectFields(forward.hints, { link: '</a.css>; rel=preload', ['__proto__']: 'x' });
  });

  it('reads a __proto__ header line of /explain as a field', () => {
    const query = parseExplainQuery({ url: 'http://a.test/p', header: ['__proto__: x', 'constructor: y'] });
    expect(typeof query).toBe('object');
    if (typeof query === 'object') expectFields(query.headers, { ['__proto__']: 'x', constructor: 'y', host: 'a.test' });
  });
});
