import type { FastifyReply, FastifyRequest } from 'fastify';
import { headerValue } from '../proxy/http/headers.js';
import { badRequest, deniedPurge, round } from './http.js';
import type { Authorizer } from './auth.js';
import { PurgeSpecError, type Purger } from './purger.js';
import type { PurgeMode, PurgeSpec } from './selectors.js';

/**
 * The Varnish habit: `PURGE /path` on the proxy listener removes every
 * variant of that URL on the request's Host; with the tag header
 * (`Surrogate-Key: a b`, configurable) it purges those tags instead.
 * `Purge-Mode: soft` marks stale instead of removing. Installed as an
 * onRequest hook so PURGE never reaches the flow (which would forward it).
 */
export interface PurgeMethodOptions {
  readonly purger: Purger;
  readonly authorizer: Authorizer;
  /** Lower-cased request header naming tags. */
  readonly tagHeader: string;
}

export function purgeMethodHook(options: PurgeMethodOptions) {
  const purgeMethod = purgeMethodHandler(options);
  // Callback style, so every other request (the hit path) passes without a promise.
  return function purgeMethodHook(request: FastifyRequest, reply: FastifyReply, done: (error?: Error) => void): void {
    if (request.method !== 'PURGE') return done();
    purgeMethod(request, reply).then(
      () => {
        if (!reply.sent) done();
      },
      (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
    );
  };
}

function purgeMethodHandler(options: PurgeMethodOptions) {
  return async function purgeMethod(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
    if (deniedPurge(options.authorizer, request, reply)) return reply;

    const mode = modeOf(request.headers['purge-mode']);
    if (mode === undefined) return badRequest(reply, 'Purge-Mode must be "soft" or "hard"');
    // headerValue, not an index: a configured name such as `constructor` would otherwise read Object.prototype's member when absent.
    const tagValue = headerValue(request.headers, options.tagHeader);
    const tags = (tagValue ?? '').split(/[\s,]+/).filter((tag) => tag !== '');
    if (tagValue !== undefined && tags.length === 0) return badRequest(reply, `the ${options.tagHeader} header names no tags`);
    const spec: PurgeSpec = tags.length > 0 ? { urls: [], tags, prefixes: [], all: false, mode } : { urls: [request.url], tags: [], prefixes: [], all: false, mode };

    try {
      const result = await options.purger.purge(spec, 'method', request.headers.host ?? '');
      return reply.header('cache-control', 'no-store').send({ purged: result.purged, durationMs: round(result.durationMs), mode });
    } catch (error) {
      if (error instanceof PurgeSpecError) return badRequest(reply, error.message);
      throw error;
    }
  };
}

function modeOf(header: string | string[] | undefined): PurgeMode | undefined {
  if (header === undefined) return 'hard';
  const value = (Array.isArray(header) ? header[0] : header)?.trim().toLowerCase();
  return value === 'soft' || value === 'hard' ? value : undefined;
}
