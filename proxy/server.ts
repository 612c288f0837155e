import { METHODS as httpMethods, type IncomingMessage, type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Config } from '../config/types.js';
import type { Delivery } from './deliver.js';
import { requestChannel, type RequestEvent } from './events.js';
import { originTransportError } from './errors.js';
import { createFastHit } from './fast-hit.js';
import { Flow, type FlowDependencies, type ProxyRequest } from './flow.js';
import { isSingleMediaType, restoreProtoField, type HeaderMap } from './http/headers.js';
import { interimToForward } from './upstream/interim.js';

/**
 * The proxy listener: a Fastify app with one catch-all route that hands
 * every request to the flow and writes the Delivery it returns. Built
 * without listening, so tests and main decide where it listens.
 */

/** Published once per answered request; metrics and logs subscribe (design.md §3, proxy/events.ts). */
export { requestChannel, type RequestEvent };

export interface ProxyServer {
  readonly app: FastifyInstance;
  readonly flow: Flow;
}

/** Every method Node's HTTP parser accepts: unknown methods are passed to the origin too (and treated as unsafe). */
const METHODS = [...httpMethods];

export interface ProxyServerOptions extends FlowDependencies {
  readonly logger?: boolean | object;
  /** Answer plain fresh memory hits before Fastify (fast-hit.ts). Default true; false sends every request through the flow. */
  readonly fastHits?: boolean;
}

export function buildProxyServer(deps: ProxyServerOptions): ProxyServer {
  const flow = new Flow(deps);
  const app = Fastify({
    logger: deps.logger ?? false,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // Bodies are streamed to the origin untouched, so Fastify never buffers them.
    bodyLimit: Number.MAX_SAFE_INTEGER,
    // Fastify sets the server's requestTimeout itself after creating it; the rest goes to http.createServer.
    requestTimeout: deps.config.limits.requestTimeout,
    http: clientTimeouts(deps.config.limits),
  });

  for (const method of METHODS) if (!app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: true });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.route({
    method: METHODS,
    url: '/*',
    handler: async (request, reply) => {
      const started = performance.now();
      // Node's parser drops a field named __proto__; the origin must see it, and a Vary may name it.
      restoreProtoField(request.raw.headers, request.raw.rawHeaders);
      const proxyRequest: ProxyRequest = {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: hasBody(request) ? request.raw : null,
        clientIp: request.socket.remoteAddress ?? '',
        protocol: 'http',
        onInterim: (status, headers) => writeInterim(reply, status, headers),
      };
      const delivery = await flow.handle(proxyRequest);
      if (requestChannel.hasSubscribers) {
        const event: RequestEvent = {
          method: request.method,
          url: request.url,
          status: delivery.status,
          outcome: delivery.outcome,
          durationMs: performance.now() - started,
          request: proxyRequest,
          delivery,
        };
        requestChannel.publish(event);
      }
      return send(reply, delivery);
    },
  });

  app.setErrorHandler((error, request, reply) => {
    // Headers of the answer that failed (its Content-Length above all) must not frame this one.
    for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
    const gateway = originTransportError(error);
    if (gateway !== undefined) {
      request.log.warn({ err: error }, 'the origin failed before its answer reached the client');
      void reply.code(gateway.status).header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-store').send(`${gateway.message}\n`);
      return;
    }
    request.log.error({ err: error }, 'request failed inside the proxy');
    const status = typeof (error as { statusCode?: unknown }).statusCode === 'number' && (error as { statusCode: number }).statusCode < 500 ? (error as { statusCode: number }).statusCode : 500;
    void reply.code(status).header('content-type', 'text/plain; charset=utf-8').header('cache-control', 'no-store').send(status < 500 ? 'Bad Request\n' : 'Internal Server Error\n');
  });

  if (deps.fastHits !== false) answerPlainHitsFirst(app, deps);
  return { app, flow };
}

/**
 * Node answers 408 and closes a connection whose request head has not fully
 * arrived within headersTimeout (the slowloris defence), but only notices on
 * its periodic connection check (30 s by default), so the check runs often
 * enough for the bound to hold within a fraction of itself.
 */
function clientTimeouts(limits: Config['limits']): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  const shortest = Math.min(...[limits.headersTimeout, limits.requestTimeout].filter((ms) => ms > 0), 30_000);
  return {
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(shortest / 4))),
  };
}

/**
 * Puts the fast hit path (fast-hit.ts) in front of Fastify's own request
 * listener: it answers the plain fresh memory hits and hands every other
 * request to Fastify untouched. The server stays the one Fastify built, with
 * every timeout and option it set. Once the app is closing, everything goes
 * to Fastify, which answers 503 as configured.
 */
function answerPlainHitsFirst(app: FastifyInstance, deps: ProxyServerOptions): void {
  const server = app.server;
  const listeners = server.listeners('request');
  // Fastify registers exactly one; anything else means it changed how it listens, and the fast path stays out of the way.
  if (listeners.length !== 1) return;
  const fastify = listeners[0] as (req: IncomingMessage, res: ServerResponse) => void;
  const fastHit = createFastHit(deps);
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  server.removeListener('request', fastify);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    let answered = false;
    if (!closing) {
      try {
        answered = fastHit(req, res);
      } catch (error) {
        // Nothing is sent before the last step; if that failed, the general path answers (and reports) as it would have.
        deps.onError?.(error, 'fast hit');
        answered = res.headersSent;
      }
    }
    if (!answered) fastify(req, res);
  });
}

function hasBody(request: FastifyRequest): boolean {
  const headers = request.headers;
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}

/** Writes a forwarded interim response, unless the final response has begun. */
function writeInterim(reply: FastifyReply, status: number, headers: HeaderMap): void {
  if (reply.raw.headersSent) return;
  const forward = interimToForward(status, headers);
  if (forward.kind === 'processing') reply.raw.writeProcessing();
  else if (forward.kind === 'early-hints') reply.raw.writeEarlyHints(forward.hints);
}

function send(reply: FastifyReply, delivery: Delivery): FastifyReply {
  reply.code(delivery.status);
  for (const name in delivery.headers) {
    const value = delivery.headers[name];
    if (value === undefined) continue;
    // Fastify keeps a reply's fields in a plain object, where `__proto__` would be lost (http/headers.ts setField); Node's own table has no prototype.
    if (name === '__proto__') reply.raw.setHeader(name, value);
    else reply.header(name, value);
  }
  return reply.send(bodyAsSent(reply, delivery));
}

/**
 * The body in the form that keeps the origin's Content-Type. Fastify gives
 * a Buffer body without a single valid media type one of its own
 * (application/octet-stream), over a missing, malformed or repeated field;
 * a stream it leaves alone. A proxy passes the field on as it came: a
 * recipient may assume octet-stream itself (RFC 9110 §8.3), a cache must
 * not write it in. So such a body, which is rare, goes out as a stream.
 */
function bodyAsSent(reply: FastifyReply, delivery: Delivery): Buffer | Readable | undefined {
  const body = delivery.body;
  if (body === null) return undefined;
  if (!Buffer.isBuffer(body) || isSingleMediaType(delivery.headers['content-type'])) return body;
  // Fastify sizes a Buffer itself; a stream it would send chunked.
  if (delivery.headers['content-length'] === undefined) reply.header('content-length', String(body.length));
  return Readable.from([body], { objectMode: false });
}
