import type { ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { lacquerConfig, LOOPBACK, nginxConfig, varnishArgs } from './peers.js';
import { captureOutput, freePort, processTree, startProcess, stopProcess, waitForHttp } from './procs.js';

/** Something the load generator can aim at: Lacquer, a peer, or the origin itself. */
export interface Target {
  readonly name: string;
  readonly url: string;
  /** PIDs whose CPU and memory count as this target's (the root and its children). */
  pids(): number[];
  stop(): Promise<void>;
  /** The configuration it was started with, for the report. */
  readonly config?: string;
  /** Lacquer's admin listener (health, /metrics). */
  readonly adminUrl?: string;
}

export type TargetName = 'lacquer' | 'varnish' | 'nginx';

function running(name: string, url: string, child: ChildProcess, config?: string): Target {
  return { name, url, pids: () => processTree(child.pid!), stop: () => stopProcess(child), ...(config === undefined ? {} : { config }) };
}

/** The bench origin in its own process. */
export async function startOrigin(): Promise<Target> {
  return startAnnounced('origin', resolve('dist/scripts/bench/origin.js'), [], 'BENCH_ORIGIN');
}

/** The node:http reference (node-floor.ts) in its own process, filling from the origin. */
export async function startNodeFloor(originUrl: string): Promise<Target> {
  const target = await startAnnounced(NODE_FLOOR, resolve('dist/scripts/bench/node-floor.js'), [originUrl], 'BENCH_FLOOR');
  return { ...target, config: 'node:http answering from a Map (scripts/bench/node-floor.ts): no cache logic, a reference point, not a peer' };
}

export const NODE_FLOOR = 'node:http floor';

/** A bench script that listens on a free port and prints `MARKER url` once it does. */
async function startAnnounced(name: string, script: string, args: readonly string[], marker: string): Promise<Target> {
  const child = startProcess(process.execPath, [script, ...args]);
  const output = captureOutput(child);
  const pattern = new RegExp(`${marker} (\\S+)`);
  const url = await new Promise<string>((resolveUrl, reject) => {
    child.once('exit', (code) => reject(new Error(`${name} exited (${code}): ${output()}`)));
    child.stdout!.on('data', () => {
      const match = pattern.exec(output());
      if (match !== null) resolveUrl(match[1]!);
    });
  });
  return running(name, url, child);
}

export interface StartOptions {
  readonly originUrl: string;
  readonly tmpDir: string;
  /** Bytes of cache each target may hold. */
  readonly cacheBytes: number;
  /** Extra arguments for node before the script (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  readonly label?: string;
  /** Another build's dist/proxy/cli.js, to measure a change against (default: this checkout's). */
  readonly cliPath?: string;
  /** Lacquer only: false starts it with metrics disabled (default: its own default, on). */
  readonly metrics?: boolean;
  /** Lacquer only: false runs the memory tier alone (default: its disk tier on, as users run it). */
  readonly disk?: boolean;
  /** Lacquer only: worker processes (default: its own default, 1). */
  readonly workers?: number;
}

/** Lacquer as users run it: the built CLI in a child process. */
export async function startLacquer(options: StartOptions): Promise<Target> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const dir = join(options.tmpDir, `lacquer-${port}`);
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, 'lacquer.yaml');
  writeFileSync(configFile, lacquerConfig({ memoryBytes: options.cacheBytes, ...(options.metrics === undefined ? {} : { metrics: options.metrics }), ...(options.disk === undefined ? {} : { disk: options.disk }), ...(options.workers === undefined ? {} : { workers: options.workers }) }));
  const child = startProcess(
    process.execPath,
    [...(options.nodeArgs ?? []), resolve(options.cliPath ?? 'dist/proxy/cli.js'), '--config', configFile, '--origin', options.originUrl, '--listen', `${LOOPBACK}:${port}`, '--admin', `${LOOPBACK}:${adminPort}`],
    { cwd: dir },
  );
  const output = captureOutput(child);
  const adminUrl = `http://${LOOPBACK}:${adminPort}`;
  await waitForHttp(`${adminUrl}/readyz`, child, output);
  return { ...running(options.label ?? 'lacquer', `http://${LOOPBACK}:${port}`, child, readFileSync(configFile, 'utf8')), adminUrl };
}

export async function startVarnish(options: StartOptions): Promise<Target> {
  const port = await freePort();
  const workDir = join(options.tmpDir, `varnish-${port}`);
  mkdirSync(workDir, { recursive: true });
  // varnishd drops privileges to its own user, which must reach the working directory.
  chmodSync(options.tmpDir, 0o755);
  chmodSync(workDir, 0o777);
  const originPort = Number(new URL(options.originUrl).port);
  const args = varnishArgs({ port, originPort, workDir, storageBytes: options.cacheBytes });
  const child = startProcess('varnishd', args);
  const output = captureOutput(child);
  const url = `http://${LOOPBACK}:${port}`;
  await waitForHttp(`${url}/__ping`, child, output);
  return running(options.label ?? 'varnish', url, child, `varnishd ${args.join(' ')}\n(the built-in VCL: no -f)`);
}

export async function startNginx(options: StartOptions): Promise<Target> {
  const port = await freePort();
  const dir = join(options.tmpDir, `nginx-${port}`);
  mkdirSync(join(dir, 'cache'), { recursive: true });
  const originPort = Number(new URL(options.originUrl).port);
  const root = process.getuid?.() === 0;
  // The hard limit, not more: raising it needs CAP_SYS_RESOURCE, which a container's root may lack.
  const config = nginxConfig({ port, originPort, dir, cacheBytes: options.cacheBytes, openFileLimit: hardOpenFileLimit(), ...(root ? { user: 'root' } : {}) });
  writeFileSync(join(dir, 'nginx.conf'), config);
  const child = startProcess('nginx', ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  const output = captureOutput(child);
  const url = `http://${LOOPBACK}:${port}`;
  await waitForHttp(`${url}/__ping`, child, output);
  return running(options.label ?? 'nginx', url, child, config);
}

/** The hard limit on open files this process (and so nginx, its child) may raise itself to. */
export function hardOpenFileLimit(): number {
  try {
    const match = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    const value = match === null ? NaN : Number(match[1]);
    return Number.isFinite(value) ? value : 1024;
  } catch {
    return 1024;
  }
}

export const STARTERS: Record<TargetName, (options: StartOptions) => Promise<Target>> = {
  lacquer: startLacquer,
  varnish: startVarnish,
  nginx: startNginx,
};

/** The executable a peer needs, to say which is missing. */
export const PEER_BINARIES: Record<Exclude<TargetName, 'lacquer'>, string> = { varnish: 'varnishd', nginx: 'nginx' };
