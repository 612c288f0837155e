import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A real origin on a loopback port that counts what reaches it. Tests
 * assert on those counts: a cache is only as good as the requests it
 * keeps away from the origin.
 */

export interface OriginRequestRecord {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

export type OriginHandler = (request: OriginRequestRecord, response: ServerResponse, count: number) => void | Promise<void>;

export interface TestOrigin {
  readonly url: string;
  readonly port: number;
  /** Every request that reached the origin, in arrival order. */
  readonly requests: OriginRequestRecord[];
  /** How many requests reached the origin (optionally for one path, query included). */
  hits(path?: string): number;
  close(): Promise<void>;
}

export interface TestOriginOptions {
  /** Sets Date on every response from this clock, so a test clock and the origin agree. */
  clock?: () => number;
}

export async function startOrigin(handler: OriginHandler, options: TestOriginOptions = {}): Promise<TestOrigin> {
  const requests: OriginRequestRecord[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const record: OriginRequestRecord = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) };
      requests.push(record);
      if (options.clock !== undefined) res.setHeader('date', new Date(options.clock()).toUTCString());
      Promise.resolve(handler(record, res, requests.length)).catch((error: unknown) => {
        res.destroy(error instanceof Error ? error : new Error(String(error)));
      });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    hits: (path?: string) => (path === undefined ? requests.length : requests.filter((r) => r.url === path).length),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A handler answering every request with the same status, headers and body. */
export function respond(status: number, headers: Record<string, string | string[]>, body: string | Buffer = ''): OriginHandler {
  return (_request, response) => {
    response.writeHead(status, headers);
    response.end(body);
  };
}
