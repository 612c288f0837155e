import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';

/**
 * A reference point for the hit scenarios, not a cache: Node's own HTTP
 * server answering from a Map, with nothing else in the way. It fetches a
 * path from the origin the first time it is asked for it and answers every
 * later request from memory with the origin's status and headers, plus an
 * Age, as a cache would. No freshness, no Vary, no key normalisation, no
 * metrics, no logs: what one Node process can reach on this box, so the
 * report can show how much of the gap to a peer is Node itself.
 *
 *   node node-floor.js ORIGIN_URL PORT
 */

interface Stored {
  readonly status: number;
  /** Flat [name, value, name, value, ...], as writeHead takes it. */
  readonly headers: string[];
  readonly body: Buffer;
}

/** Hop-by-hop fields and the ones the floor writes itself. */
const NOT_COPIED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'date', 'age']);

export async function startNodeFloor(originUrl: string, port: number): Promise<{ url: string; close(): Promise<void> }> {
  const stored = new Map<string, Stored>();
  const filling = new Map<string, Promise<Stored>>();

  const fill = async (path: string): Promise<Stored> => {
    const response = await fetch(`${originUrl}${path}`);
    const body = Buffer.from(await response.arrayBuffer());
    const headers: string[] = [];
    response.headers.forEach((value, name) => {
      if (!NOT_COPIED.has(name)) headers.push(name, value);
    });
    const entry: Stored = { status: response.status, headers: [...headers, 'age', '0'], body };
    stored.set(path, entry);
    return entry;
  };

  const answer = (res: ServerResponse, entry: Stored) => {
    res.writeHead(entry.status, entry.headers);
    res.end(entry.body);
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = req.url ?? '/';
    const entry = stored.get(path);
    if (entry !== undefined) return answer(res, entry);
    let pending = filling.get(path);
    if (pending === undefined) {
      pending = fill(path).finally(() => filling.delete(path));
      filling.set(path, pending);
    }
    pending.then(
      (filled) => answer(res, filled),
      () => {
        res.writeHead(502);
        res.end();
      },
    );
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Run directly: listen and print the address for the parent. */
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [originUrl, port] = process.argv.slice(2);
  if (originUrl === undefined) throw new Error('usage: node-floor.js ORIGIN_URL [PORT]');
  const floor = await startNodeFloor(originUrl, Number(port ?? 0));
  process.stdout.write(`BENCH_FLOOR ${floor.url}\n`);
  const stop = () => void floor.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
