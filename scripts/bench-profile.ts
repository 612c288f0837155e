/**
 * `npm run bench:profile`: runs Lacquer (the built CLI, in a child process)
 * under `node --cpu-prof`, serves the 1 KiB hit with wrk (or autocannon)
 * for a bounded time, stops it, and writes reports/profile-hit-1k.md with
 * the functions that took the most self time, plus the raw .cpuprofile.
 *
 *   --seconds N      measured load, default 8
 *   --out-dir DIR    default reports
 */
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { detectGenerator, runLoad, writeWrkScripts } from './bench/load.js';
import { PATHS } from './bench/origin.js';
import { killAllStartedSync, stopAllStarted } from './bench/procs.js';
import { renderProfile, selfTimes, type CpuProfile } from './bench/profile.js';
import { startLacquer, startOrigin } from './bench/targets.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '8' }, 'out-dir': { type: 'string', default: 'reports' } } });
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
  const url = `${lacquer.url}${PATHS.hit1k}`;
  for (let i = 0; i < 2; i++) await (await fetch(url)).arrayBuffer();
  const scripts = writeWrkScripts(tmpDir);
  await runLoad(generator, { url, connections: 50, durationS: 1 }, scripts);
  const load = await runLoad(generator, { url, connections: 50, durationS: seconds }, scripts);
  // The profile is written when the process exits, so stop it (SIGTERM drains and exits).
  await lacquer.stop();
  await origin.stop();

  const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error('Lacquer exited without writing a CPU profile');
  const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as CpuProfile;
  const outDir = resolve(values['out-dir']);
  mkdirSync(outDir, { recursive: true });
  copyFileSync(join(profileDir, file), join(outDir, 'profile-hit-1k.cpuprofile'));
  const heading = `CPU profile of the 1 KiB hit (${generator}, 50 connections, ${seconds} s: ${Math.round(load.rps)} req/s, p99 ${load.p99Ms.toFixed(2)} ms)`;
  const markdown = renderProfile(selfTimes(profile), 30, heading);
  writeFileSync(join(outDir, 'profile-hit-1k.md'), markdown);
  process.stdout.write(`${markdown}\nwrote ${join(outDir, 'profile-hit-1k.md')} and profile-hit-1k.cpuprofile\n`);
}

main().catch(async (error: unknown) => {
  console.error(error);
  await stopAllStarted();
  process.exit(1);
});
