import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runCount, runLoad, writeWrkScripts, type Generator, type LoadResult } from './bench/load.js';
import { PATHS, startBenchOrigin } from './bench/origin.js';
import { LOOPBACK } from './bench/peers.js';
import { captureOutput, freePort, killAllStartedSync, startProcess, stopProcess, waitForHttp } from './bench/procs.js';
import { median } from './bench/stats.js';

/**
 * Hit throughput with `workers: 1` and `workers: 2` on this machine.
 *
 *   npm run bench:workers -- [--runs 3] [--duration 10] [--connections 32] [--generator autocannon|wrk] [--path /body/1k]
 *
 * For each worker count and each run: a fresh Lacquer (the built CLI, memory
 * tier only, logs off) in front of the benchmark origin on loopback; the
 * path is requested until every worker holds it (origin count = workers),
 * then one bounded load run of fixed duration asks for it alone. Worker
 * counts alternate run by run (1, 2, 1, 2, ...), so a slow spell of the box
 * is shared. Reports every run and the median of each count. The load
 * generator runs in this process (autocannon) or as its own (wrk): on a
 * 2-core box it competes with the workers for the same cores, which is part
 * of what the figures say.
 */

const CLI = resolve('dist/proxy/cli.js');

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '32' },
      generator: { type: 'string', default: 'autocannon' },
      path: { type: 'string', default: PATHS.hit1k },
    },
  });
  const runs = Number(values.runs);
  const durationS = Math.min(60, Number(values.duration));
  const connections = Math.min(512, Number(values.connections));
  const generator = values.generator as Generator;
  const path = values.path;
  const dir = mkdtempSync(join(tmpdir(), 'lacquer-bench-workers-'));
  const scripts = writeWrkScripts(dir);
  const config = join(dir, 'lacquer.yaml');
  writeFileSync(config, 'cache:\n  disk:\n    enabled: false\nlog:\n  level: silent\n');
  const origin = await startBenchOrigin();

  const results = new Map<number, LoadResult[]>([
    [1, []],
    [2, []],
  ]);
  try {
    for (let run = 1; run <= runs; run++) {
      for (const workers of [1, 2]) {
        const port = await freePort();
        const admin = await freePort();
        const child = startProcess(process.execPath, [CLI, '--workers', String(workers), '--config', config, '--listen', `${LOOPBACK}:${port}`, '--admin', `${LOOPBACK}:${admin}`, '--origin', origin.url]);
        const output = captureOutput(child);
        const url = `http://${LOOPBACK}:${port}`;
        try {
          await waitForHttp(`http://${LOOPBACK}:${admin}/healthz`, child, output);
          const before = origin.count(path);
          // Fresh connections land on every worker in turn; enough of them fill each worker's memory tier.
          for (let i = 0; i < 20 && origin.count(path) - before < workers; i++) await runCount(url, [path], 4 * workers, 4 * workers);
          if (origin.count(path) - before !== workers) throw new Error(`expected ${workers} origin fetches to fill the workers, saw ${origin.count(path) - before}`);
          const result = await runLoad(generator, { url: url + path, connections, durationS }, scripts);
          if (origin.count(path) - before !== workers) throw new Error('the load reached the origin: not a hit benchmark');
          results.get(workers)!.push(result);
          console.log(`run ${run}, workers ${workers}: ${Math.round(result.rps)} req/s, p50 ${result.p50Ms.toFixed(2)} ms, p99 ${result.p99Ms.toFixed(2)} ms, errors ${result.errors}`);
        } finally {
          await stopProcess(child);
        }
      }
    }
  } finally {
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const one = median(results.get(1)!.map((result) => result.rps));
  const two = median(results.get(2)!.map((result) => result.rps));
  console.log(`\nhits on ${path}, ${connections} connections, ${durationS} s per run, ${generator}, median of ${runs}:`);
  console.log(`  workers 1: ${Math.round(one)} req/s (p99 ${median(results.get(1)!.map((r) => r.p99Ms)).toFixed(2)} ms)`);
  console.log(`  workers 2: ${Math.round(two)} req/s (p99 ${median(results.get(2)!.map((r) => r.p99Ms)).toFixed(2)} ms)`);
  console.log(`  ratio: ${(two / one).toFixed(2)}`);
}

process.on('exit', killAllStartedSync);
main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
