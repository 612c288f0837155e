import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuthRequest, Authorizer } from './auth.js';

/** The Fastify side of purge answers, shared by POST /purge and the PURGE method. */

/** The purge check as a yes/no on a Fastify request, for other operator routes guarded like purge (e.g. explain). */
export function allowedLikePurge(authorizer: Authorizer): (request: FastifyRequest) => boolean {
  return (request) => authorizer.authorize(authRequestOf(request)).kind === 'allowed';
}

function authRequestOf(request: FastifyRequest): AuthRequest {
  const { headers } = request;
  const relayed = headers['x-forwarded-for'] !== undefined || headers['forwarded'] !== undefined || headers['via'] !== undefined;
  return { authorization: headers.authorization, clientIp: request.socket.remoteAddress ?? '', relayed };
}

/**
 * Answers 401/403 when the client may not purge, and says whether it did;
 * used by every purge entry point. Synchronous on purpose: a Fastify reply
 * is thenable, so returning one from an async function would lose it.
 */
export function deniedPurge(authorizer: Authorizer, request: FastifyRequest, reply: FastifyReply): boolean {
  const decision = authorizer.authorize(authRequestOf(request));
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
