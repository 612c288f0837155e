import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';

/**
 * Hit throughput with metrics on and off, on loopback: the lacquer
 * command in a child process, a tiny origin and the load generator in this
 * one. Runs alternate on/off so drift on a shared machine hits both
 * alike; every run is bounded in time. Prints each run, the medians and
 * their ratio.
 *
 *   npm run build && node dist/scripts/metrics-overhead.js [rounds=3] [seconds=5] [connections=10] [log level=warn]
 */

const CLI = resolve('dist/proxy/cli.js');
const rounds = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 5);
const connections = Number(process.argv[4] ?? 10);
// The banner (and so the listening address) needs a level other than silent; warn writes no access lines.
const logLevel = process.argv[5] ?? 'warn';

async function main(): Promise<void> {
  const origin = createServer((_request, response) => {
    response.writeHead(200, { 'cache-control': 'max-age=3600', 'content-type': 'application/json' });
    response.end(JSON.stringify({ hello: 'world', padding: 'x'.repeat(512) }));
  });
  await new Promise<void>((done) => origin.listen(0, '127.0.0.1', done));
  const originUrl = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;

  const results: Record<'on' | 'off', Measurement[]> = { on: [], off: [] };
  for (let round = 0; round < rounds; round++) {
    // Alternate which goes first, so neither always runs on a warmer (or busier) machine.
    const order: ('on' | 'off')[] = round % 2 === 0 ? ['on', 'off'] : ['off', 'on'];
    for (const mode of order) {
      const measured = await measure(originUrl, mode === 'on');
      results[mode].push(measured);
      process.stdout.write(`round ${round + 1} metrics ${mode.padEnd(3)} ${measured.rps.toFixed(0)} req/s, ${measured.cpuMicrosPerRequest.toFixed(1)} µs CPU per request\n`);
    }
  }
  const on = median(results.on.map((m) => m.rps));
  const off = median(results.off.map((m) => m.rps));
  const cpuOn = median(results.on.map((m) => m.cpuMicrosPerRequest));
  const cpuOff = median(results.off.map((m) => m.cpuMicrosPerRequest));
  process.stdout.write(
    `median metrics on  ${on.toFixed(0)} req/s, ${cpuOn.toFixed(1)} µs CPU per request\n` +
      `median metrics off ${off.toFixed(0)} req/s, ${cpuOff.toFixed(1)} µs CPU per request\n` +
      `throughput on/off ${(on / off).toFixed(3)}; CPU per request on/off ${(cpuOn / cpuOff).toFixed(3)}\n`,
  );
  origin.close();
}

interface Measurement {
  readonly rps: number;
  /** The proxy process's CPU time (user + system) over the run, per request: less sensitive to other load than throughput. */
  readonly cpuMicrosPerRequest: number;
}

async function measure(originUrl: string, metrics: boolean): Promise<Measurement> {
  const dir = mkdtempSync(join(tmpdir(), 'lacquer-overhead-'));
  writeFileSync(join(dir, 'proxy.config.yaml'), `metrics:\n  enabled: ${metrics}\n`);
  const child = spawn(process.execPath, [CLI, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--origin', originUrl], {
    cwd: dir,
    env: { ...process.env, LACQUER_LOG_LEVEL: logLevel },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const proxyUrl = await listeningUrl(child);
    const url = `${proxyUrl}/hit`;
    await fetch(url).then((response) => response.arrayBuffer());
    // A short warm-up lets the JIT settle before the measured run.
    await run(url, 1);
    const cpuBefore = cpuMicros(child.pid!);
    const result = await run(url, seconds);
    const cpu = cpuMicros(child.pid!) - cpuBefore;
    if (result.non2xx > 0 || result.errors > 0) throw new Error(`run had ${result.non2xx} non-2xx answers and ${result.errors} errors`);
    return { rps: result.requests.average, cpuMicrosPerRequest: cpu / result.requests.total };
  } finally {
    const exited = new Promise((done) => child.once('exit', done));
    child.kill('SIGTERM');
    await exited;
  }
}

function run(url: string, duration: number): Promise<autocannon.Result> {
  return autocannon({ url, connections, duration, pipelining: 1 });
}

async function listeningUrl(child: ChildProcess): Promise<string> {
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  for (let i = 0; i < 500; i++) {
    const match = /listening on (http:\/\/\S+)/.exec(out);
    if (match !== null && out.includes('admin:')) return match[1]!;
    if (child.exitCode !== null) break;
    await new Promise((done) => setTimeout(done, 20));
  }
  throw new Error(`lacquer did not start: ${out}`);
}

/** utime + stime of a process from /proc (Linux), in microseconds, assuming the usual 100 ticks per second. */
function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

await main();
