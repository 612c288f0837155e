/**
 * `npm run bench:fill`: the cost of storing. Fills a fresh Lacquer with N
 * distinct 10 KiB objects (each a miss that is stored), with its disk tier
 * (the default) and with its memory tier alone, runs interleaved, and prints
 * the medians: seconds for the fill, wall µs per object, and the server's
 * CPU µs per object (user + system of its process, read from /proc; less
 * noisy than wall time on a shared box). Loopback only; every run is
 * bounded in count (N requests) and in time (autocannon's 10 s timeout per
 * request, the servers stopped after each run).
 *
 *   --objects N      objects per fill, default 20000 (at most 100000)
 *   --rounds R       interleaved rounds, default 3 (at most 9)
 *   --connections C  concurrent clients, default 128
 *   --compare CLI    also run another build's dist/proxy/cli.js with its disk tier, as "disk-compare": a before/after
 *   --cpu-prof DIR   write a CPU profile of each disk-tier run (this build) into DIR
 *   --work-dir DIR   where the cache directories go (default /dev/shm when writable, as `npm run bench`)
 *   --out FILE       also write the figures as JSON
 */
import { accessSync, constants, mkdtempSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { runCount } from './bench/load.js';
import { MEM_OBJECT_BYTES, PATHS } from './bench/origin.js';
import { cpuSeconds, killAllStartedSync, stopAllStarted } from './bench/procs.js';
import { median } from './bench/stats.js';
import { startLacquer, startOrigin } from './bench/targets.js';

interface Kind {
  readonly name: string;
  readonly disk: boolean;
  readonly cliPath?: string;
  readonly profile?: boolean;
}

interface Run {
  readonly kind: string;
  readonly round: number;
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly failed: number;
}

/** Objects stored before the timed fill, so the timed part runs warm code. */
const WARM_OBJECTS = 1000;
const GIB = 1024 ** 3;

function defaultWorkDir(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

/** The filesystem type under a directory, by its magic number (statfs(2)); the ones a cache directory is likely on. */
function filesystemOf(dir: string): string {
  const names: Record<number, string> = { 0x01021994: 'tmpfs', 0xef53: 'ext4/ext3', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x794c7630: 'overlayfs' };
  const type = statfsSync(dir).type;
  return names[type] ?? `type 0x${type.toString(16)}`;
}

function bounded(value: string | undefined, fallback: number, max: number): number {
  const n = Number(value ?? fallback);
  return Number.isInteger(n) && n > 0 ? Math.min(n, max) : fallback;
}

async function fillOnce(kind: Kind, originUrl: string, tmpDir: string, plan: { objects: number; connections: number; profileDir?: string }): Promise<Omit<Run, 'kind' | 'round'>> {
  const nodeArgs = kind.profile === true && plan.profileDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', resolve(plan.profileDir)] : [];
  // A directory per run, removed after it: the filled entries would otherwise pile up in the tmpfs round after round.
  const runDir = mkdtempSync(join(tmpDir, 'run-'));
  const target = await startLacquer({ originUrl, tmpDir: runDir, cacheBytes: 4 * GIB, disk: kind.disk, label: kind.name, nodeArgs, ...(kind.cliPath === undefined ? {} : { cliPath: kind.cliPath }) });
  try {
    const warm = Array.from({ length: WARM_OBJECTS }, (_, i) => PATHS.mem(i));
    await runCount(target.url, warm, warm.length, 32);
    const paths = Array.from({ length: plan.objects }, (_, i) => PATHS.mem(WARM_OBJECTS + i));
    const cpuBefore = cpuSeconds(target.pids());
    const timed = await timedFill(target.url, paths, plan.connections);
    const cpu = cpuSeconds(target.pids()) - cpuBefore;
    return { seconds: timed.seconds, cpuSeconds: cpu, failed: timed.failed };
  } finally {
    await target.stop();
    rmSync(runDir, { recursive: true, force: true });
  }
}

/**
 * Exactly one request per path, timed from the start to the last answer:
 * autocannon's own duration (and its callback) only come on its one-second
 * ticks, too coarse for fills of a few seconds.
 */
function timedFill(url: string, paths: readonly string[], connections: number): Promise<{ seconds: number; failed: number }> {
  let next = 0;
  const started = process.hrtime.bigint();
  let last = started;
  return new Promise((resolvePromise, reject) => {
    const instance = autocannon(
      {
        url,
        connections,
        amount: paths.length,
        timeout: 10,
        requests: [
          {
            setupRequest: (request: autocannon.Request) => {
              request.path = paths[next++ % paths.length]!;
              return request;
            },
          },
        ],
      },
      (error, result) => (error ? reject(error as Error) : resolvePromise({ seconds: Number(last - started) / 1e9, failed: result.errors + result.timeouts + result.non2xx })),
    );
    instance.on('response', () => {
      last = process.hrtime.bigint();
    });
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      objects: { type: 'string' },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      compare: { type: 'string' },
      'cpu-prof': { type: 'string' },
      'work-dir': { type: 'string' },
      out: { type: 'string' },
    },
  });
  const objects = bounded(values.objects, 20_000, 100_000);
  const rounds = bounded(values.rounds, 3, 9);
  const connections = bounded(values.connections, 128, 1024);
  const workDir = values['work-dir'] ?? defaultWorkDir();
  const tmpDir = mkdtempSync(join(workDir, 'lacquer-fill-'));
  process.once('exit', () => {
    killAllStartedSync();
    rmSync(tmpDir, { recursive: true, force: true });
  });
  const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
  const kinds: Kind[] = [{ name: 'disk', disk: true, profile: true }, { name: 'memory-only', disk: false }];
  if (values.compare !== undefined) kinds.push({ name: 'disk-compare', disk: true, cliPath: resolve(values.compare) });
  log(`filling ${objects} objects of ${MEM_OBJECT_BYTES / 1024} KiB, ${connections} connections, ${rounds} round(s); cache directories in ${tmpDir} (${filesystemOf(tmpDir)})`);

  const origin = await startOrigin();
  const runs: Run[] = [];
  try {
    for (let round = 1; round <= rounds; round++) {
      // Rotated each round, so no kind always runs first (after a quiet spell) or last.
      const order = kinds.map((_, i) => kinds[(i + round - 1) % kinds.length]!);
      for (const kind of order) {
        const run = { kind: kind.name, round, ...(await fillOnce(kind, origin.url, tmpDir, { objects, connections, ...(values['cpu-prof'] === undefined ? {} : { profileDir: values['cpu-prof'] }) })) };
        runs.push(run);
        log(`  round ${round} ${kind.name}: ${run.seconds.toFixed(2)} s, ${perObject(run.seconds, objects)} µs/object wall, ${perObject(run.cpuSeconds, objects)} µs/object CPU${run.failed > 0 ? `, ${run.failed} FAILED requests` : ''}`);
      }
    }
  } finally {
    await origin.stop();
  }

  const summary = kinds.map((kind) => {
    const own = runs.filter((run) => run.kind === kind.name);
    return { kind: kind.name, seconds: median(own.map((run) => run.seconds)), cpuSeconds: median(own.map((run) => run.cpuSeconds)), failed: own.reduce((sum, run) => sum + run.failed, 0) };
  });
  const lines = ['', `| ${objects} × 10 KiB fill, medians of ${rounds} | seconds | wall µs/object | server CPU µs/object | failed requests |`, '|---|---|---|---|---|'];
  for (const row of summary) lines.push(`| ${row.kind} | ${row.seconds.toFixed(2)} | ${perObject(row.seconds, objects)} | ${perObject(row.cpuSeconds, objects)} | ${row.failed} |`);
  process.stdout.write(`${lines.join('\n')}\n`);
  if (values.out !== undefined) writeFileSync(values.out, `${JSON.stringify({ objects, rounds, connections, filesystem: filesystemOf(tmpDir), node: process.version, runs, summary }, null, 2)}\n`);
}

function perObject(seconds: number, objects: number): string {
  return ((seconds / objects) * 1e6).toFixed(0);
}

main().catch(async (error: unknown) => {
  console.error(error);
  await stopAllStarted();
  process.exit(1);
});
