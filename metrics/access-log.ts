import type { RequestEvent } from '../proxy/events.js';

/**
 * One structured access line per answered request, written through the
 * proxy's pino logger. Only named fields are logged: never request bodies,
 * headers (so no Authorization or Cookie), or the query string, which
 * often carries credentials of its own.
 */

/** The part of a pino (Fastify) logger the access log needs. */
export interface InfoLogger {
  info(fields: object, message: string): void;
}

export interface AccessLine {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly outcome: string;
  /** Until the answer was ready to send, in ms (0.1 ms resolution). */
  readonly durationMs: number;
  /** Time spent waiting on the origin for this request, or null when it did not go to the origin itself. */
  readonly originMs: number | null;
}

const ACCESS_LEVELS = new Set(['info', 'debug', 'trace']);

export class AccessLog {
  readonly #logger: InfoLogger;

  constructor(logger: InfoLogger) {
    this.#logger = logger;
  }

  /** Access lines are info-level: an AccessLog is only worth creating when that level is enabled. */
  static enabledAt(level: string): boolean {
    return ACCESS_LEVELS.has(level);
  }

  write(event: RequestEvent, originMs: number | undefined): void {
    this.#logger.info(accessLine(event, originMs), 'request');
  }
}

export function accessLine(event: RequestEvent, originMs: number | undefined): AccessLine {
  return {
    method: event.method,
    path: loggedPath(event.url),
    status: event.status,
    outcome: event.outcome,
    durationMs: round(event.durationMs),
    originMs: originMs === undefined ? null : round(originMs),
  };
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}

/**
 * The path of a request target, without its query (which may carry
 * tokens) and, for an absolute-form target (RFC 9112 §3.2.2), without its
 * scheme and authority (which may carry user:password@).
 */
export function loggedPath(target: string): string {
  let path = target;
  if (!path.startsWith('/')) {
    const authority = path.indexOf('://');
    if (authority !== -1) {
      const slash = path.indexOf('/', authority + 3);
      path = slash === -1 ? '/' : path.slice(slash);
    }
  }
  const queryStart = path.indexOf('?');
  return queryStart === -1 ? path : path.slice(0, queryStart);
}
