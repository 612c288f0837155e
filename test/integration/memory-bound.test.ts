import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { startLacquerProcess, type LacquerProcess } from '../helpers/child.js';
import { startOrigin, type TestOrigin } from '../helpers/origin.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * The memory tier's bound holds for the whole process: 1 GiB of distinct
 * objects passes through a real `lacquer` process with a 64 MiB memory
 * tier, and its peak resident set grows by no more than the bound plus the
 * stated allocator overhead (README, "Memory bound"). Growth over the idle
 * process is asserted rather than an absolute figure, so the test does not
 * depend on what the machine adds to an idle Node process.
 */

const KiB = 1024;
const MiB = 1024 * KiB;
const CACHE = 64 * MiB;
/** Freed body buffers the allocator has not yet handed back, measured at 80 to 84 MiB (Node 20) and 116 to 124 MiB (Node 24). */
const OVERHEAD = 192 * MiB;
const OBJECT = 256 * KiB;
const TOTAL = 1024 * MiB;

let lacquer: LacquerProcess | undefined;
let origin: TestOrigin | undefined;
afterAll(async () => {
  await lacquer?.stop('SIGKILL');
  await origin?.close();
});

function bodyFor(index: number): Buffer {
  const body = Buffer.alloc(OBJECT, index & 0xff);
  body.writeUInt32BE(index, 0);
  return body;
}

function procStatus(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (match === null) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * KiB;
}

describe('the memory bound', () => {
  it(`keeps RSS growth under cache.memory.maxSize + 192 MiB while 1 GiB of distinct objects pass through a 64 MiB cache`, async () => {
    origin = await startOrigin((request, response) => {
      response.writeHead(200, { 'cache-control': 'max-age=600', 'content-type': 'application/octet-stream' });
      response.end(bodyFor(Number(request.url.slice(3))));
    });
    const dir = tempDir('lacquer-memory-bound-');
    const file = join(dir, 'config.yaml');
    writeFileSync(file, `cache:\n  memory:\n    maxSize: ${CACHE}\n    maxObjectSize: 1MiB\n  disk:\n    enabled: false\n`);
    lacquer = await startLacquerProcess(['--origin', origin.url, '--config', file], { LACQUER_LOG_LEVEL: 'warn' }, dir);
    const pid = lacquer.child.pid!;
    const idle = procStatus(pid, 'VmRSS');

    const client = new Agent({ connections: 8 });
    const count = TOTAL / OBJECT;
    let next = 0;
    let wrong = 0;
    const worker = async () => {
      while (next < count) {
        const index = next++;
        const response = await undiciRequest(`${lacquer!.url}/o/${index}`, { dispatcher: client });
        const body = Buffer.from(await response.body.arrayBuffer());
        if (response.statusCode !== 200 || !body.equals(bodyFor(index))) wrong++;
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    await client.close();

    const peak = procStatus(pid, 'VmHWM');
    expect(wrong).toBe(0);
    expect(origin.hits()).toBe(count);
    expect(peak - idle).toBeLessThan(CACHE + OVERHEAD);
    // Most of what passed through is gone: the tier holds at most its bound.
    const metrics = await (await undiciRequest(`${lacquer.adminUrl}/metrics`)).body.text();
    const stored = Number(/^lacquer_store_bytes\{tier="memory"\} (\d+)/m.exec(metrics)?.[1]);
    expect(stored).toBeLessThanOrEqual(CACHE);
    process.stdout.write(`memory bound: ${TOTAL / MiB} MiB through ${CACHE / MiB} MiB: idle RSS ${(idle / MiB).toFixed(1)} MiB, peak ${(peak / MiB).toFixed(1)} MiB, store ${(stored / MiB).toFixed(1)} MiB\n`);
  }, 180_000);
});
