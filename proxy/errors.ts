/**
 * The one registry of errors Lacquer answers with. Transport failures are
 * mapped here and nowhere else, keeping the original error as `cause`.
 */

export type ProxyErrorCode =
  | 'ORIGIN_UNREACHABLE'
  | 'ORIGIN_TIMEOUT'
  | 'ORIGIN_RESET'
  | 'ORIGIN_BAD_RESPONSE'
  | 'ONLY_IF_CACHED'
  | 'BAD_REQUEST';

const STATUS: Record<ProxyErrorCode, number> = {
  ORIGIN_UNREACHABLE: 502,
  ORIGIN_TIMEOUT: 504,
  ORIGIN_RESET: 502,
  ORIGIN_BAD_RESPONSE: 502,
  // RFC 9111 §5.2.1.7: only-if-cached with nothing usable stored.
  ONLY_IF_CACHED: 504,
  BAD_REQUEST: 400,
};

const MESSAGE: Record<ProxyErrorCode, string> = {
  ORIGIN_UNREACHABLE: 'Bad Gateway: the origin could not be reached',
  ORIGIN_TIMEOUT: 'Gateway Timeout: the origin did not answer in time',
  ORIGIN_RESET: 'Bad Gateway: the origin closed the connection',
  ORIGIN_BAD_RESPONSE: 'Bad Gateway: the origin sent an invalid response',
  ONLY_IF_CACHED: 'Gateway Timeout: not in cache (only-if-cached)',
  BAD_REQUEST: 'Bad Request',
};

export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  readonly status: number;

  constructor(code: ProxyErrorCode, options?: { cause?: unknown; detail?: string }) {
    super(options?.detail === undefined ? MESSAGE[code] : `${MESSAGE[code]}: ${options.detail}`, { cause: options?.cause });
    this.name = 'ProxyError';
    this.code = code;
    this.status = STATUS[code];
  }
}

const TIMEOUT_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_ABORTED']);

/** Maps anything the transport threw to a ProxyError with a gateway status. */
export function upstreamError(error: unknown): ProxyError {
  if (error instanceof ProxyError) return error;
  const code = errorCode(error);
  if (code !== undefined && TIMEOUT_CODES.has(code)) return new ProxyError('ORIGIN_TIMEOUT', { cause: error });
  if (code !== undefined && UNREACHABLE_CODES.has(code)) return new ProxyError('ORIGIN_UNREACHABLE', { cause: error });
  if (code !== undefined && RESET_CODES.has(code)) return new ProxyError('ORIGIN_RESET', { cause: error });
  return new ProxyError('ORIGIN_BAD_RESPONSE', { cause: error });
}

/**
 * The gateway error for a failure of the origin's connection, or undefined
 * for anything else. A streamed origin body that fails before its first byte
 * reaches the client surfaces as the reply's error: it is still the
 * origin's failure (502/504), not ours (500).
 */
export function originTransportError(error: unknown): ProxyError | undefined {
  if (error instanceof ProxyError) return error;
  const code = errorCode(error);
  if (code === undefined || !(TIMEOUT_CODES.has(code) || UNREACHABLE_CODES.has(code) || RESET_CODES.has(code))) return undefined;
  return upstreamError(error);
}

function errorCode(error: unknown): string | undefined {
  let current: unknown = error;
  // undici wraps socket errors; the errno code may sit on the cause.
  for (let depth = 0; depth < 3 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && code !== 'UND_ERR') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}
