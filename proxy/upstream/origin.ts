import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { OriginOptions } from '../../config/types.js';
import { ProxyError, upstreamError } from '../errors.js';
import type { HeaderMap } from '../http/headers.js';
import type { InterimListener } from './interim.js';

export interface OriginRequest {
  readonly method: string;
  /** Path and query, before the origin's path prefix. */
  readonly path: string;
  readonly headers: HeaderMap;
  /** The request body, streamed as it arrives; null when there is none. */
  readonly body: Readable | null;
  /** Told of each interim (1xx) response that precedes the final one. */
  readonly onInterim?: InterimListener | undefined;
}

export interface OriginResponse {
  readonly status: number;
  readonly headers: HeaderMap;
  /** Must be consumed or destroyed, or the pooled connection is held. */
  readonly body: Readable;
}

/**
 * The origin as a transport: an undici pool with the configured timeouts.
 * Every failure leaves here as a ProxyError with a gateway status.
 */
export class Origin {
  readonly url: URL;
  readonly #pool: Pool;
  readonly #prefix: string;
  readonly #options: OriginOptions;

  constructor(url: string, options: OriginOptions) {
    this.url = new URL(url);
    this.#options = options;
    this.#prefix = this.url.pathname.replace(/\/+$/, '');
    this.#pool = new Pool(this.url.origin, {
      connections: options.connections,
      connect: { timeout: options.connectTimeout },
      headersTimeout: options.headersTimeout,
      bodyTimeout: options.bodyTimeout,
      // Keep-alive sockets the origin may already have closed are a common source of spurious resets.
      keepAliveTimeout: 4_000,
    });
  }

  /** The Host value that names the origin itself. */
  get host(): string {
    return this.url.host;
  }

  /**
   * Sends one request. A plain promise chain rather than an async function
   * with a try block: this runs once per request that reaches the origin,
   * and every promise layer costs the pass-through path a little.
   */
  request(request: OriginRequest): Promise<OriginResponse> {
    let pending;
    try {
      pending = this.#pool.request({
        method: request.method as 'GET',
        path: this.#prefix + request.path,
        headers: request.headers as Record<string, string | string[]>,
        body: request.body,
        headersTimeout: this.#options.headersTimeout,
        bodyTimeout: this.#options.bodyTimeout,
        // A property that is absent or undefined: an object spread here would cost more than the field (deliver.ts withFacts).
        onInfo: request.onInterim === undefined ? undefined : interimAdapter(request.onInterim),
      });
    } catch (error) {
      return Promise.reject(upstreamError(error));
    }
    return pending.then(received, failed);
  }

  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** Aborts whatever is still in flight and closes every socket: the end of a drain that ran out of time. */
  async destroy(): Promise<void> {
    await this.#pool.destroy();
  }
}

function received(response: Dispatcher.ResponseData): OriginResponse {
  // A body nobody reads to the end (discarded, or abandoned when a client
  // leaves) may still fail; without a listener that error would end the process.
  response.body.on('error', ignoreError);
  if (response.statusCode < 100 || response.statusCode > 599) {
    response.body.destroy();
    throw new ProxyError('ORIGIN_BAD_RESPONSE', { detail: `invalid status ${response.statusCode}` });
  }
  return { status: response.statusCode, headers: response.headers as HeaderMap, body: response.body };
}

function failed(error: unknown): never {
  throw upstreamError(error);
}

function ignoreError(): void {}

function interimAdapter(listener: InterimListener): (info: { statusCode: number; headers: Record<string, string | string[] | undefined> }) => void {
  return (info) => {
    try {
      listener(info.statusCode, info.headers);
    } catch {
      // A client that cannot take an interim response still gets the final one.
    }
  };
}

/**
 * The whole body as one Buffer when every byte its Content-Length declares
 * has already arrived (a small answer usually comes in the same read as
 * its headers, and is buffered in the stream before anyone reads it);
 * undefined, with the stream untouched, otherwise. Nothing waits here:
 * a body still arriving is streamed as before. Handing on a Buffer spares
 * a small answer the stream plumbing between the origin's body and the
 * client's socket (pipe, listeners, end-of-stream tracking), which costs
 * more than its bytes.
 */
export function arrivedWhole(body: Readable, contentLength: string | undefined): Buffer | undefined {
  if (contentLength === undefined || body.readableFlowing === true || body.readableObjectMode) return undefined;
  const declared = Number(contentLength);
  if (!(declared > 0) || body.readableLength !== declared) return undefined;
  const whole = body.read() as Buffer | null;
  if (whole === null || whole.length !== declared) {
    // Not what was counted (a stream that holds back part of its buffer): hand the bytes back, unchanged, for streaming.
    if (whole !== null) body.unshift(whole);
    return undefined;
  }
  // The framing is complete, so the stream has ended: let it emit its end and release what it holds.
  body.resume();
  return whole;
}

export type BufferedBody =
  | { readonly complete: true; readonly body: Buffer }
  /** The body passed `limit`: what was read so far and the unread rest, to be streamed on. */
  | { readonly complete: false; readonly head: Buffer[]; readonly rest: Readable };

/** Reads a body into memory up to `limit` bytes; a body that is longer is handed back for streaming. */
export async function bufferBody(body: Readable, limit: number): Promise<BufferedBody> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    // destroyOnReturn: false, so leaving the loop early hands back a live stream rather than a destroyed one.
    for await (const chunk of body.iterator({ destroyOnReturn: false })) {
      const buffer = chunk as Buffer;
      chunks.push(buffer);
      length += buffer.length;
      if (length > limit) return { complete: false, head: chunks, rest: body };
    }
  } catch (error) {
    throw upstreamError(error);
  }
  return { complete: true, body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, length) };
}
