/**
 * Reading a V8 CPU profile (the .cpuprofile JSON `node --cpu-prof` writes):
 * self time per function, and per area of the code, so the report can say
 * where a hit's time goes.
 */

export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  }[];
  readonly samples: readonly number[];
  /** Microseconds since the previous sample. */
  readonly timeDeltas: readonly number[];
  /** Microseconds on the monotonic clock (the one process.hrtime reads, in any process on this machine). */
  readonly startTime: number;
}

/** A stretch of the monotonic clock, in microseconds: the measured load, without start-up and filling. */
export interface Window {
  readonly fromUs: number;
  readonly toUs: number;
}

/** Now on the clock a CPU profile's times are on. */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

export interface SelfTime {
  readonly name: string;
  readonly location: string;
  readonly area: Area;
  readonly selfMs: number;
}

export type Area = 'lacquer' | 'fastify' | 'node' | 'other-deps' | 'gc' | 'socket-write' | 'idle' | 'vm';

/**
 * Native socket writes. The profiler samples wall time, so on a shared
 * 2-core box this frame also holds the time the process spends descheduled
 * inside the syscall (on loopback the write wakes the load generator, which
 * often takes the core). It is reported apart so it does not drown the rest.
 */
const SOCKET_WRITES = new Set(['writev', 'writeBuffer', 'writeUtf8String', 'writeLatin1String', 'writeAsciiString']);

export function areaOf(functionName: string, url: string): Area {
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(garbage collector)') return 'gc';
  if (url === '' && SOCKET_WRITES.has(functionName)) return 'socket-write';
  if (url === '') return 'vm';
  if (url.startsWith('node:')) return 'node';
  // WebAssembly in this process is undici's HTTP parser (llhttp).
  if (url.startsWith('wasm://')) return 'other-deps';
  if (url.includes('/node_modules/fastify/') || url.includes('/node_modules/find-my-way/') || url.includes('/node_modules/light-my-request/') || url.includes('/node_modules/avvio/')) return 'fastify';
  if (url.includes('/node_modules/')) return 'other-deps';
  return 'lacquer';
}

/** Self time by function (name + location), largest first. */
export function selfTimes(profile: CpuProfile, window?: Window): SelfTime[] {
  const byNode = new Map<number, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window !== undefined && (at < window.fromUs || at > window.toUs)) continue;
    const id = profile.samples[i]!;
    byNode.set(id, (byNode.get(id) ?? 0) + delta);
  }
  const byFunction = new Map<string, SelfTime>();
  for (const node of profile.nodes) {
    const us = byNode.get(node.id);
    if (us === undefined) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const name = functionName === '' ? '(anonymous)' : functionName;
    const location = url === '' ? '' : `${shortUrl(url)}:${lineNumber + 1}`;
    const key = `${name}@${location}`;
    const previous = byFunction.get(key);
    byFunction.set(key, { name, location, area: areaOf(functionName, url), selfMs: (previous?.selfMs ?? 0) + us / 1000 });
  }
  return [...byFunction.values()].sort((a, b) => b.selfMs - a.selfMs);
}

/** Self time summed per area. */
export function areaTimes(times: readonly SelfTime[]): Record<Area, number> {
  const totals: Record<Area, number> = { lacquer: 0, fastify: 0, node: 0, 'other-deps': 0, gc: 0, 'socket-write': 0, idle: 0, vm: 0 };
  for (const time of times) totals[time.area] += time.selfMs;
  return totals;
}

function shortUrl(url: string): string {
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) return url.slice(modules + '/node_modules/'.length);
  const dist = url.lastIndexOf('/dist/');
  if (dist !== -1) return url.slice(dist + '/dist/'.length);
  return url.replace(/^file:\/\//, '');
}

export function renderProfile(times: readonly SelfTime[], top: number, title: string): string {
  const areas = areaTimes(times);
  const busy = times.filter((t) => t.area !== 'idle').reduce((sum, t) => sum + t.selfMs, 0);
  const onCpu = busy - areas['socket-write'];
  const pct = (value: number, of: number) => (of > 0 ? `${((value / of) * 100).toFixed(1)}%` : '—');
  const lines = [
    `# ${title}`,
    '',
    `Sampled ${busy.toFixed(0)} ms busy and ${areas.idle.toFixed(0)} ms idle. "socket-write" is the native writev of each response: the profiler samples wall time, so it also holds the time the process sat descheduled inside the syscall (on loopback the write wakes the load generator on the shared cores). The last column leaves it out.`,
    '',
    '| area | self ms | share of busy | share of busy without socket-write |',
    '|---|---|---|---|',
    ...(['lacquer', 'fastify', 'node', 'other-deps', 'gc', 'vm', 'socket-write'] as const).map(
      (area) => `| ${area} | ${areas[area].toFixed(0)} | ${pct(areas[area], busy)} | ${area === 'socket-write' ? '—' : pct(areas[area], onCpu)} |`,
    ),
    '',
    `Top ${top} functions by self time:`,
    '',
    '| function | where | area | self ms | share of busy without socket-write |',
    '|---|---|---|---|---|',
    ...times
      .filter((t) => t.area !== 'idle' && t.area !== 'socket-write')
      .slice(0, top)
      .map((t) => `| ${t.name.replace(/\|/g, '\\|')} | ${t.location} | ${t.area} | ${t.selfMs.toFixed(1)} | ${pct(t.selfMs, onCpu)} |`),
    '',
  ];
  return lines.join('\n');
}
