import { request as httpRequest } from 'node:http';
import type { TestResponse } from './proxy.js';

/**
 * A request through node:http on a fresh connection, for headers that
 * undici will not send as given (a Host with odd characters, a Connection
 * header naming other fields, Expect).
 */
export function nodeFetch(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<TestResponse> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: init.method ?? 'GET', headers: init.headers ?? {}, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks).toString() }));
      response.on('error', reject);
    });
    request.on('error', reject);
    // With Expect: 100-continue, the body waits for the server's go-ahead.
    if (init.headers?.['expect'] !== undefined) request.on('continue', () => request.end(init.body));
    else request.end(init.body);
  });
}
