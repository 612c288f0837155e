import type { ServerResponse } from 'node:http';

/** A body whose every byte depends on the path and the offset, so a truncated or mixed-up body cannot pass for it. */
export function bodyFor(path: string, length: number): Buffer {
  const body = Buffer.allocUnsafe(length);
  let seed = 0;
  for (const char of path) seed = (seed * 31 + char.charCodeAt(0)) >>> 0;
  for (let i = 0; i < length; i++) body[i] = (seed + i * 7 + (i >> 8)) & 0xff;
  return body;
}

/** Writes a body in 16 KiB pieces, honouring back-pressure, so a reader is often in the middle of it. */
export function sendInPieces(response: ServerResponse, body: Buffer): void {
  let offset = 0;
  const more = (): void => {
    while (offset < body.length) {
      const piece = body.subarray(offset, offset + 16 * 1024);
      offset += piece.length;
      if (!response.write(piece)) return void response.once('drain', more);
    }
    response.end();
  };
  more();
}
