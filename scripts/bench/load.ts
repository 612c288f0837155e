import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { captureOutput, startProcess } from './procs.js';

/**
 * The load generators: wrk when installed (it costs the box less CPU per
 * request than a Node client), autocannon otherwise. Every run is bounded
 * in time; fills are bounded in count (bursts: scripts/bench/burst.ts).
 */

export type Generator = 'wrk' | 'autocannon';

export interface LoadSpec {
  readonly url: string;
  /** Request paths cycled in order; one path when absent (the url's own). */
  readonly pathsFile?: string;
  readonly paths?: readonly string[];
  readonly connections: number;
  readonly durationS: number;
}

export interface LoadResult {
  readonly requests: number;
  readonly durationS: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Connection errors, timeouts and non-2xx/3xx answers. */
  readonly errors: number;
}

export function detectGenerator(): Generator {
  return spawnSync('wrk', ['--version']).error === undefined ? 'wrk' : 'autocannon';
}

/** wrk prints this line from the script's done() hook. */
const WRK_DONE = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("\\nBENCH_JSON {\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d,\\"errors\\":%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
`;

/** Cycles through a file of paths, one per line (the Zipf sequence). */
const WRK_PATHS = `
local paths = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
end
request = function()
  i = i % #paths + 1
  return wrk.format(nil, paths[i])
end
`;

export function writeWrkScripts(dir: string): { fixed: string; paths: string } {
  const fixed = join(dir, 'fixed.lua');
  const paths = join(dir, 'paths.lua');
  writeFileSync(fixed, WRK_DONE);
  writeFileSync(paths, WRK_PATHS + WRK_DONE);
  return { fixed, paths };
}

export function parseWrkOutput(output: string): LoadResult {
  const match = /BENCH_JSON (\{.*\})/.exec(output);
  if (match === null) throw new Error(`wrk printed no result: ${output.slice(0, 1000)}`);
  const raw = JSON.parse(match[1]!) as { requests: number; duration_us: number; p50_us: number; p99_us: number; errors: number };
  const durationS = raw.duration_us / 1e6;
  return { requests: raw.requests, durationS, rps: raw.requests / durationS, p50Ms: raw.p50_us / 1000, p99Ms: raw.p99_us / 1000, errors: raw.errors };
}

export async function runLoad(generator: Generator, spec: LoadSpec, scripts: { fixed: string; paths: string }): Promise<LoadResult> {
  if (generator === 'wrk') {
    const args = ['-t1', `-c${spec.connections}`, `-d${spec.durationS}s`, '--timeout', '10s', '-s', spec.pathsFile === undefined ? scripts.fixed : scripts.paths, spec.url];
    if (spec.pathsFile !== undefined) args.push('--', spec.pathsFile);
    const child = startProcess('wrk', args);
    const output = captureOutput(child, 1 << 20);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`wrk failed (${code}): ${output().slice(0, 1000)}`);
    return parseWrkOutput(output());
  }
  const result = await autocannonRun({ url: spec.url, connections: spec.connections, duration: spec.durationS, paths: spec.paths });
  return {
    requests: result.requests.total,
    durationS: result.duration,
    rps: result.requests.total / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    errors: result.errors + result.timeouts + result.non2xx,
  };
}

/** Exactly `amount` requests over `paths` (cycled), e.g. to fill a cache; autocannon counts them. */
export async function runCount(url: string, paths: readonly string[], amount: number, connections: number): Promise<autocannon.Result> {
  return autocannonRun({ url, connections, amount, paths });
}

function autocannonRun(options: { url: string; connections: number; duration?: number; amount?: number; paths?: readonly string[] }): Promise<autocannon.Result> {
  const paths = options.paths;
  let next = 0;
  const requests =
    paths === undefined || paths.length === 0
      ? undefined
      : [
          {
            setupRequest: (request: autocannon.Request) => {
              request.path = paths[next++ % paths.length]!;
              return request;
            },
          },
        ];
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: options.url,
        connections: options.connections,
        ...(options.amount === undefined ? { duration: options.duration ?? 1 } : { amount: options.amount }),
        timeout: 10,
        ...(requests === undefined ? {} : { requests }),
      },
      (error, result) => (error ? reject(error as Error) : resolve(result)),
    );
  });
}

/** The version line of a peer or tool, for the report (some print it on stderr). */
export function versionOf(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.error !== undefined) return 'not installed';
  const text = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  return text.split('\n')[0]?.trim() ?? 'unknown';
}
