import Fastify, { LogController, type FastifyInstance } from 'fastify';
import type { Origin } from './upstream/origin.js';

/**
 * The admin listener: health now; purge and metrics register their routes
 * here later. It never shares a port with the proxy, so an operator can
 * keep it off the public network.
 */
export interface AdminOptions {
  readonly origin: Origin;
  readonly logger?: boolean | object;
  /** How long a readiness answer is reused, so probes cannot hammer the origin. */
  readonly readinessCacheMs?: number;
  /**
   * Parts whose state /readyz reports beside the origin's, read on every
   * probe (main.ts adds Redis once it is configured). A degraded part is
   * reported, and sets `degraded: true`, but does not make the answer 503:
   * see ReadinessPart.
   */
  readonly parts?: () => readonly ReadinessPart[];
}

/**
 * A part Lacquer works without, in a lesser way. Redis is one: without it an
 * instance serves from its local tiers and queues its purges. Every
 * instance shares the one Redis, so answering 503 for it would take the
 * whole fleet out of the load balancer at once, turning a loss of shared
 * invalidation into a full outage.
 */
export interface ReadinessPart {
  readonly name: string;
  readonly degraded: boolean;
  readonly detail: Readonly<Record<string, unknown>>;
}

export function buildAdminServer(options: AdminOptions): FastifyInstance {
  const app = Fastify({ logger: options.logger ?? false, logController: new LogController({ disableRequestLogging: true }) });
  const cacheMs = options.readinessCacheMs ?? 1000;
  let lastCheck: { at: number; result: Promise<ReadinessResult> } | undefined;

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const now = Date.now();
    if (lastCheck === undefined || now - lastCheck.at > cacheMs) lastCheck = { at: now, result: checkOrigin(options.origin) };
    const result = await lastCheck.result;
    const parts = options.parts?.() ?? [];
    if (parts.length === 0) return reply.code(result.ready ? 200 : 503).send(result);
    const body: Record<string, unknown> = { ...result, degraded: parts.some((part) => part.degraded) };
    for (const part of parts) body[part.name] = { degraded: part.degraded, ...part.detail };
    return reply.code(result.ready ? 200 : 503).send(body);
  });

  return app;
}

interface ReadinessResult {
  ready: boolean;
  origin: string;
  detail?: string;
}

/** Ready when the origin answers anything at all: a 404 or 500 still proves it is reachable. */
async function checkOrigin(origin: Origin): Promise<ReadinessResult> {
  try {
    const response = await origin.request({ method: 'HEAD', path: '/', headers: { host: origin.host, 'user-agent': 'lacquer-readyz' }, body: null });
    response.body.resume();
    return { ready: true, origin: origin.url.href };
  } catch (error) {
    return { ready: false, origin: origin.url.href, detail: error instanceof Error ? error.message : String(error) };
  }
}
