import type { FastifyInstance } from 'fastify';
import type { Authorizer } from './auth.js';
import { parsePurgeBody } from './body.js';
import { badRequest, deniedPurge, round } from './http.js';
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
