import { connect, type Socket } from 'node:net';

/**
 * One burst: `clients` keep-alive connections, opened and warmed first,
 * then one request each for the same path, all written in one go; the
 * burst lasts from the first request written to the end of the last
 * response. A single bounded measurement, not a load loop.
 *
 * Why not autocannon or wrk: both start sending on each connection as soon
 * as it is open, with no way to hold the requests back until every
 * connection is ready, so a burst of 200 would time connection setup (200
 * handshakes, in the load generator's one thread) along with the server.
 * Here the connections are opened and used once (on a cheap path) before
 * the clock starts, and each request is a preformatted buffer written to
 * its socket, so the client adds microseconds, not milliseconds.
 */

export interface BurstOptions {
  /** The server, e.g. http://127.0.0.1:8080 (plain HTTP only). */
  readonly url: string;
  /** A cheap path each connection fetches once before the burst (a cached hit). */
  readonly warmPath: string;
  /** The path every client asks for at once. */
  readonly path: string;
  readonly clients: number;
  /** The whole measurement (connect, warm, burst) gives up after this long. */
  readonly timeoutMs?: number;
}

export interface BurstMeasurement {
  /** From the first burst request written to the end of the last response, ms. */
  readonly spanMs: number;
  /** The longest any one client waited, from its request written to its response's end, ms. */
  readonly slowestMs: number;
  /** From the first burst request written to the end of the first response, ms: the origin's delay plus what it took the server to start the fetch. */
  readonly firstAnswerMs: number;
  /** From the first burst request written to the last, ms (the client's own spread). */
  readonly writeMs: number;
  /** Burst responses with a status other than 2xx. */
  readonly non2xx: number;
}

export async function measureBurst(options: BurstOptions): Promise<BurstMeasurement> {
  const { hostname, port, host } = new URL(options.url);
  const sockets: Socket[] = [];
  const timeoutMs = options.timeoutMs ?? 10_000;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`burst against ${options.url} did not finish within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    const work = (async () => {
      for (let i = 0; i < options.clients; i++) sockets.push(connect({ host: hostname, port: Number(port), noDelay: true }));
      await Promise.all(sockets.map((socket) => new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject))));
      const warm = requestBytes(options.warmPath, host);
      const warmed = await Promise.all(
        sockets.map((socket) => {
          const answer = exchange(socket);
          socket.write(warm);
          return answer;
        }),
      );
      const failedWarm = warmed.filter((response) => response.status < 200 || response.status >= 300).length;
      if (failedWarm > 0) throw new Error(`${failedWarm} warm-up requests to ${options.warmPath} were not answered 2xx`);

      const request = requestBytes(options.path, host);
      // Readers first, then the writes in a tight loop, so the requests leave as close together as they can.
      const answers = sockets.map((socket) => exchange(socket));
      const sentAt = sockets.map((socket) => {
        socket.write(request);
        return performance.now();
      });
      const firstSent = sentAt[0]!;
      const responses = await Promise.all(answers);
      const ends = responses.map((response) => response.endedAt);
      return {
        spanMs: Math.max(...ends) - firstSent,
        slowestMs: Math.max(...responses.map((response, i) => response.endedAt - sentAt[i]!)),
        firstAnswerMs: Math.min(...ends) - firstSent,
        writeMs: sentAt[sentAt.length - 1]! - firstSent,
        non2xx: responses.filter((response) => response.status < 200 || response.status >= 300).length,
      };
    })();
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
    for (const socket of sockets) socket.destroy();
  }
}

function requestBytes(path: string, host: string): Buffer {
  return Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: lacquer-bench-burst\r\nAccept: */*\r\n\r\n`, 'latin1');
}

interface Answer {
  readonly status: number;
  /** performance.now() when the response's last byte was read. */
  readonly endedAt: number;
}

/** Reads the next response on a socket; the caller then writes the request. */
function exchange(socket: Socket): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const reader = new ResponseReader();
    const onData = (chunk: Buffer) => {
      let status: number | undefined;
      try {
        status = reader.feed(chunk);
      } catch (error) {
        done();
        reject(error as Error);
        return;
      }
      if (status !== undefined) {
        done();
        resolve({ status, endedAt: performance.now() });
      }
    };
    const onEnd = () => {
      done();
      reject(new Error('the server closed the connection before the response ended'));
    };
    const onError = (error: Error) => {
      done();
      reject(error);
    };
    const done = () => {
      socket.off('data', onData).off('end', onEnd).off('error', onError);
    };
    socket.on('data', onData).once('end', onEnd).once('error', onError);
  });
}

const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * Just enough of an HTTP/1.1 response reader to know where one response
 * ends on a keep-alive connection: Content-Length or chunked framing (a
 * cache streaming an answer it is still receiving may not know the
 * length). Responses to anything but GET with a body-less status are not
 * expected here.
 */
export class ResponseReader {
  #head = Buffer.alloc(0);
  #status: number | undefined;
  /** Content-Length body bytes still to come. */
  #remaining = 0;
  /** Chunked framing: the body bytes so far, re-read on each chunk (bodies here are small). */
  #chunked: Buffer | undefined;

  /** Takes the next bytes; returns the status once the response has ended. */
  feed(chunk: Buffer): number | undefined {
    if (this.#status === undefined) {
      this.#head = Buffer.concat([this.#head, chunk]);
      const end = this.#head.indexOf(HEADER_END);
      if (end === -1) return undefined;
      const lines = this.#head.subarray(0, end).toString('latin1').split('\r\n');
      const statusMatch = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
      if (statusMatch === null) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(lines[0])}`);
      const status = Number(statusMatch[1]);
      if (status < 200) throw new Error(`interim response ${status} is not expected`);
      const fields = new Map(lines.slice(1).map((line) => [line.slice(0, line.indexOf(':')).trim().toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      this.#status = status;
      const rest = this.#head.subarray(end + HEADER_END.length);
      if (status === 204 || status === 304) return this.#finished(rest);
      if (/\bchunked\b/i.test(fields.get('transfer-encoding') ?? '')) {
        this.#chunked = Buffer.alloc(0);
        return this.#feedChunked(rest);
      }
      const length = fields.get('content-length');
      if (length === undefined || !/^\d+$/.test(length)) throw new Error('a response without Content-Length or chunked framing cannot end on a keep-alive connection');
      this.#remaining = Number(length);
      return this.#feedLength(rest);
    }
    return this.#chunked !== undefined ? this.#feedChunked(chunk) : this.#feedLength(chunk);
  }

  #feedLength(bytes: Buffer): number | undefined {
    if (bytes.length > this.#remaining) throw new Error('more bytes than the response declared (pipelining is not used)');
    this.#remaining -= bytes.length;
    return this.#remaining === 0 ? this.#status : undefined;
  }

  #feedChunked(bytes: Buffer): number | undefined {
    const body = Buffer.concat([this.#chunked!, bytes]);
    this.#chunked = body;
    let at = 0;
    for (;;) {
      const lineEnd = body.indexOf('\r\n', at);
      if (lineEnd === -1) return undefined;
      const size = parseInt(body.subarray(at, lineEnd).toString('latin1').split(';')[0]!, 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size');
      if (size === 0) {
        // No trailers expected: the last chunk is followed by an empty line.
        if (body.length < lineEnd + 4) return undefined;
        if (body.length > lineEnd + 4) throw new Error('bytes after the last chunk (pipelining is not used)');
        return this.#status;
      }
      at = lineEnd + 2 + size + 2;
      if (body.length < at) return undefined;
    }
  }

  #finished(rest: Buffer): number | undefined {
    if (rest.length > 0) throw new Error('bytes after a response without a body');
    return this.#status;
  }
}
