import { createServer, type Socket } from 'node:net';

/**
 * An origin that speaks raw bytes, for answers a Node HTTP server refuses
 * to send (bad framing, invalid statuses, malformed headers). `reply` gets
 * the socket once a request head has arrived and the count of requests so far.
 */
export interface RawOrigin {
  readonly url: string;
  /** How many request heads reached it. */
  hits(): number;
  /** Sockets open on the origin's side right now. */
  connections(): number;
  close(): Promise<void>;
}

/** `head` is the request head as received (request line and header lines), for answers that depend on the path. */
export async function startRawOrigin(reply: (socket: Socket, count: number, head: string) => void): Promise<RawOrigin> {
  let count = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    const onData = (chunk: Buffer) => {
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      count += 1;
      reply(socket, count, head);
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    hits: () => count,
    connections: () => sockets.size,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
