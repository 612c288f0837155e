/**
 * `npm run bench:profile`: runs Lacquer (the built CLI, in a child process)
 * under `node --cpu-prof`, loads one path with wrk (or autocannon) for a
 * bounded time, stops it, and writes reports/profile-<what>.md with the
 * functions that took the most self time, plus the raw .cpuprofile.
 *
 *   --what hit-1k|zipf|pass|swr   the 1 KiB hit (50 connections, default),
 *                        hits over 100,000 Zipf-drawn keys (50 connections),
 *                        the uncacheable pass-through (1 connection), or the
 *                        stale-while-revalidate path (50 connections)
 *   --seconds N          measured load, default 8
 *   --out-dir DIR        default reports
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { detectGenerator, runCount, runLoad, writeWrkScripts } from './bench/load.js';
import { PATHS } from './bench/origin.js';
import { killAllStartedSync, stopAllStarted } from './bench/procs.js';
import { monotonicUs, renderProfile, selfTimes, type CpuProfile } from './bench/profile.js';
import { startLacquer, startOrigin } from './bench/targets.js';
import { zipfSequence } from './bench/zipf.js';

const WHAT = {
  'hit-1k': { path: PATHS.hit1k, connections: 50, title: '1 KiB hit' },
  zipf: { path: '', connections: 50, title: 'hits over 100,000 keys, Zipf(s=1)' },
  pass: { path: PATHS.pass, connections: 1, title: 'uncacheable pass-through' },
  swr: { path: PATHS.swr, connections: 50, title: 'stale-while-revalidate path (max-age=1, 50 ms origin)' },
} as const;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { what: { type: 'string', default: 'hit-1k' }, seconds: { type: 'string', default: '8' }, 'out-dir': { type: 'string', default: 'reports' } },
  });
  const what = WHAT[values.what as keyof typeof WHAT];
  if (what === undefined) throw new Error(`--what: expected one of ${Object.keys(WHAT).join(', ')}, got ${values.what}`);
  const seconds = Math.min(60, Math.max(1, Number(values.seconds)));
  const tmpDir = mkdtempSync(join(tmpdir(), 'lacquer-profile-'));
  process.once('exit', () => {
    killAllStartedSync();
    rmSync(tmpDir, { recursive: true, force: true });
  });
  const profileDir = join(tmpDir, 'profile');
  const generator = detectGenerator();
  const origin = await startOrigin();
  const lacquer = await startLacquer({ originUrl: origin.url, tmpDir, cacheBytes: 256 * 1024 * 1024, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profileDir] });
  const url = `${lacquer.url}${what.path}`;
  const scripts = writeWrkScripts(tmpDir);
  // Zipf: the same seeded sequence as the bench, every key it touches filled first; otherwise one path, fetched twice.
  const spread = values.what === 'zipf' ? zipfPaths(tmpDir) : undefined;
  if (spread === undefined) for (let i = 0; i < 2; i++) await (await fetch(url)).arrayBuffer();
  else await runCount(lacquer.url, spread.fill, spread.fill.length, 32);
  const spec = { url, connections: what.connections, ...(spread === undefined ? {} : { pathsFile: spread.pathsFile, paths: spread.paths }) };
  await runLoad(generator, { ...spec, durationS: 1 }, scripts);
  const fromUs = monotonicUs();
  const load = await runLoad(generator, { ...spec, durationS: seconds }, scripts);
  const window = { fromUs, toUs: monotonicUs() };
  // The profile is written when the process exits, so stop it (SIGTERM drains and exits).
  await lacquer.stop();
  await origin.stop();

  const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error('Lacquer exited without writing a CPU profile');
  const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as CpuProfile;
  const outDir = resolve(values['out-dir']);
  mkdirSync(outDir, { recursive: true });
  const name = `profile-${values.what}`;
  copyFileSync(join(profileDir, file), join(outDir, `${name}.cpuprofile`));
  const heading = `CPU profile of the ${what.title} (${generator}, ${what.connections} connection(s), ${seconds} s: ${Math.round(load.rps)} req/s, p99 ${load.p99Ms.toFixed(2)} ms)`;
  const markdown = renderProfile(selfTimes(profile, window), 30, heading);
  writeFileSync(join(outDir, `${name}.md`), markdown);
  process.stdout.write(`${markdown}\nwrote ${join(outDir, `${name}.md`)} and ${name}.cpuprofile\n`);
}

function zipfPaths(dir: string): { paths: string[]; pathsFile: string; fill: string[] } {
  const { ranks, distinct } = zipfSequence(100_000, 100_000, 42);
  const paths = ranks.map(PATHS.zipf);
  const pathsFile = join(dir, 'zipf-paths.txt');
  writeFileSync(pathsFile, `${paths.join('\n')}\n`);
  return { paths, pathsFile, fill: distinct.map(PATHS.zipf) };
}

main().catch(async (error: unknown) => {
  console.error(error);
  await stopAllStarted();
  process.exit(1);
});
