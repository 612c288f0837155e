import { describe, expect, it } from 'vitest';
import { headerBlockFor, plainRequest } from '../../proxy/fast-hit.js';
import { connectionNamesOthers, fieldsOriginDoesNotSee } from '../../proxy/upstream/forward-headers.js';
import { testEntry } from '../helpers/entries.js';

describe('what the fast hit path takes on', () => {
  it('takes plain GET and HEAD requests only', () => {
    expect(plainRequest('GET', { host: 'a', accept: '*/*', 'user-agent': 'x' })).toBe(true);
    expect(plainRequest('HEAD', { host: 'a' })).toBe(true);
    for (const method of ['POST', 'PURGE', 'OPTIONS', undefined]) expect(plainRequest(method, { host: 'a' })).toBe(false);
    for (const name of ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range', 'cache-control', 'pragma', 'authorization', 'content-length', 'transfer-encoding']) {
      expect(plainRequest('GET', { host: 'a', [name]: 'x' }), name).toBe(false);
    }
  });

  it('works out an entry’s header fields once, without Age or Cache-Status', () => {
    const entry = testEntry({ key: 'k', body: Buffer.from('abc'), headers: { 'content-type': 'text/plain', 'content-length': '3', link: ['<a>', '<b>'], age: '9' } });
    const block = headerBlockFor(entry, 'edge');
    expect(block).not.toBe(false);
    if (block === false) return;
    // Flat, as writeHead takes it; the Age and Cache-Status values are each answer's own.
    expect(block.fields).toEqual(['content-type', 'text/plain', 'content-length', '3', 'link', ['<a>', '<b>'], 'age', '', 'cache-status', '']);
    expect(block.hitStatus).toBe('edge; hit; ttl=');
  });

  it('leaves to the general path the entries Fastify would send differently', () => {
    const typed = { 'content-type': 'text/plain', 'content-length': '3' };
    // No Content-Type is sent as stored by both paths (server.ts), so it is no reason to step aside.
    expect(headerBlockFor(testEntry({ key: 'k', body: Buffer.from('abc'), headers: { 'content-length': '3' } }), 'c')).not.toBe(false);
    expect(headerBlockFor(testEntry({ key: 'k', body: Buffer.from('abc'), headers: { 'content-type': 'text/plain', 'content-length': '4' } }), 'c')).toBe(false);
    expect(headerBlockFor(testEntry({ key: 'k', body: Buffer.from('abc'), headers: { 'content-type': 'text/plain' } }), 'c')).toBe(false);
    for (const status of [204, 205, 304]) expect(headerBlockFor(testEntry({ key: 'k', status, body: Buffer.from('abc'), headers: typed }), 'c')).toBe(false);
    expect(headerBlockFor(testEntry({ key: 'k', status: 404, body: Buffer.from('abc'), headers: typed }), 'c')).not.toBe(false);
    const onDisk = testEntry({ key: 'k', body: { kind: 'file', path: '/nonexistent', length: 3 } as never, headers: typed });
    expect(headerBlockFor(onDisk, 'c')).toBe(false);
  });
});

describe('the fields that send a request to the general path', () => {
  const refused = new Set(['range', ...fieldsOriginDoesNotSee(['x-forwarded-host'])]);

  it('refuses a request carrying a stripped or hop-by-hop field, whatever else it carries', () => {
    for (const name of ['x-forwarded-host', 'te', 'upgrade', 'proxy-authorization', 'transfer-encoding', 'range']) {
      expect(plainRequest('GET', { host: 'a', accept: '*/*', [name]: 'x' }, refused), name).toBe(false);
    }
  });

  it('takes Connection and Keep-Alive alone: the origin not seeing them changes no key', () => {
    expect(plainRequest('GET', { host: 'a', connection: 'keep-alive', 'keep-alive': 'timeout=5' }, refused)).toBe(true);
    expect(connectionNamesOthers({ host: 'a', connection: 'keep-alive' })).toBe(false);
  });

  it('sees a Connection header that names a field the request carries', () => {
    expect(connectionNamesOthers({ host: 'a', connection: 'accept-language', 'accept-language': 'fr' })).toBe(true);
    // Naming a field that is not there removes nothing.
    expect(connectionNamesOthers({ host: 'a', connection: 'accept-language' })).toBe(false);
  });
});
