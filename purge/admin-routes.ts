import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authorizer } from './auth.js';
import { parsePurgeBody } from './body.js';
import { PurgeSpecError, type Purger } from './purger.js';

/**
 * POST /purge on the admin listener. The body is read as text (whatever the
 * Content-Type: `curl -d` sends form encoding by default) up to
 * `maxBodySize`, and only after the client is authorized.
 */
export interface PurgeRouteOptions {
  readonly purger: Purger;
  readonly authorizer: Authorizer;
  readonly maxBodySize: number;
}

export function purgeRoutes(options: PurgeRouteOptions) {
  return async function purgeRoutesPlugin(app: FastifyInstance): Promise<void> {
    // Scoped to this plugin: the admin listener's other routes keep Fastify's parsers.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: options.maxBodySize }, (_request, body, done) => done(null, body));

    app.post('/purge', {
      bodyLimit: options.maxBodySize,
      onRequest: async (request, reply) => {
        if (deniedPurge(options.authorizer, request, reply)) return reply;
        return undefined;
      },
      handler: async (request, reply) => {
        const verdict = parsePurgeBody(typeof request.body === 'string' ? request.body : undefined);
        if (verdict.kind === 'invalid') return badRequest(reply, verdict.message);
        try {
          const result = await options.purger.purge(verdict.spec, 'admin');
          return reply.header('cache-control', 'no-store').send({ purged: result.purged, durationMs: round(result.durationMs), mode: verdict.spec.mode });
        } catch (error) {
          if (error instanceof PurgeSpecError) return badRequest(reply, error.message);
          throw error;
        }
      },
    });
  };
}

/** The purge check as a yes/no on a Fastify request, for other operator routes guarded like purge (e.g. explain). */
export function allowedLikePurge(authorizer: Authorizer): (request: FastifyRequest) => boolean {
  return (request) => authorizer.authorize({ authorization: request.headers.authorization, clientIp: request.socket.remoteAddress ?? '' }).kind === 'allowed';
}

/**
 * Answers 401/403 when the client may not purge, and says whether it did;
 * used by every purge entry point. Synchronous on purpose: a Fastify reply
 * is thenable, so returning one from an async function would lose it.
 */
export function deniedPurge(authorizer: Authorizer, request: FastifyRequest, reply: FastifyReply): boolean {
  const authorization = request.headers.authorization;
  const decision = authorizer.authorize({ authorization, clientIp: request.socket.remoteAddress ?? '' });
  if (decision.kind === 'allowed') return false;
  if (decision.status === 401) reply.header('www-authenticate', 'Bearer realm="lacquer"');
  void reply
    .code(decision.status)
    .header('cache-control', 'no-store')
    .send({ error: decision.status === 401 ? 'Unauthorized' : 'Forbidden', message: decision.reason });
  return true;
}

export function badRequest(reply: FastifyReply, message: string): FastifyReply {
  return reply.code(400).header('cache-control', 'no-store').send({ error: 'Bad Request', message });
}

export function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
