import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { buildAdminServer } from '../../proxy/admin.js';
import { Origin } from '../../proxy/upstream/origin.js';
import { respond, startOrigin, type TestOrigin } from '../helpers/origin.js';
import { fetchText } from '../helpers/proxy.js';

let origin: TestOrigin | undefined;
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
  await origin?.close();
  origin = undefined;
});

async function admin(originUrl: string): Promise<string> {
  const transport = new Origin(originUrl, defaults().origin);
  const app = buildAdminServer({ origin: transport, readinessCacheMs: 0 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(async () => {
    await app.close();
    await transport.close();
  });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

describe('admin listener', () => {
  it('answers /healthz while the process is alive, whatever the origin does', async () => {
    const url = await admin('http://127.0.0.1:1');
    const answer = await fetchText(`${url}/healthz`);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ status: 'ok' });
  });

  it('answers /readyz with 200 when the origin answers anything, and 503 when it cannot be reached', async () => {
    origin = await startOrigin(respond(404, {}, 'nope'));
    const url = await admin(origin.url);
    expect((await fetchText(`${url}/readyz`)).status).toBe(200);
    await origin.close();
    const down = await fetchText(`${url}/readyz`);
    expect(down.status).toBe(503);
    expect(JSON.parse(down.body).ready).toBe(false);
  });
});
