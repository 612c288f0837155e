import type { LoadResult } from './load.js';
import { median, ratio } from './stats.js';

/**
 * The benchmark's results as data, and their Markdown rendering. Pure:
 * everything here is a function of the measurements, so it is tested
 * without running any load.
 */

export interface RunSample {
  readonly round: number;
  readonly target: string;
  readonly load: LoadResult;
  /** Server CPU (user + system) over the run, seconds, from /proc/<pid>/stat. */
  readonly cpuSeconds: number;
  /** Requests that reached the origin during the run. */
  readonly originRequests: number;
}

export interface ThroughputSummary {
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly cpuUsPerRequest: number;
  readonly errors: number;
  readonly originRequests: number;
  readonly runs: number;
}

export interface BurstSample {
  readonly round: number;
  readonly target: string;
  readonly clients: number;
  readonly originRequests: number;
  readonly wallMs: number;
  readonly maxLatencyMs: number;
  /** From the first request written to the first answer's end (origin delay plus the time to start the fetch), when measured. */
  readonly firstAnswerMs?: number;
  readonly errors: number;
}

export interface MemorySample {
  readonly target: string;
  readonly objects: number;
  readonly bodyBytes: number;
  readonly rssBeforeBytes: number;
  readonly rssAfterBytes: number;
}

export type ScenarioResult =
  | { readonly kind: 'throughput'; readonly id: string; readonly title: string; readonly connections: number; readonly samples: RunSample[]; readonly notes: string[] }
  | { readonly kind: 'burst'; readonly id: string; readonly title: string; readonly originDelayMs: number; readonly samples: BurstSample[]; readonly notes: string[] }
  | { readonly kind: 'memory'; readonly id: string; readonly title: string; readonly samples: MemorySample[]; readonly notes: string[] }
  /** One build measured with a feature on and off (targets `on` and `off`), interleaved. */
  | { readonly kind: 'on-off'; readonly id: string; readonly title: string; readonly connections: number; readonly on: string; readonly off: string; readonly samples: RunSample[]; readonly notes: string[] }
  | { readonly kind: 'not-run'; readonly id: string; readonly title: string; readonly notes: string[] };

export interface BenchReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly mode: 'full' | 'quick';
  readonly machine: { readonly cpus: number; readonly node: string; readonly loadAverage: readonly number[]; readonly shared: string };
  readonly generator: string;
  readonly targets: readonly string[];
  readonly skipped: readonly string[];
  readonly versions: Readonly<Record<string, string>>;
  readonly peerConfigs: Readonly<Record<string, string>>;
  readonly scenarios: readonly ScenarioResult[];
}

export const LACQUER = 'lacquer';
export const ORIGIN_DIRECT = 'origin (direct)';
/** The same build with `workers: 2`, measured beside the default in the 1 KiB hit. */
export const LACQUER_WORKERS = 'lacquer (workers: 2)';

export function summarize(samples: readonly RunSample[], target: string): ThroughputSummary | undefined {
  const mine = samples.filter((sample) => sample.target === target);
  if (mine.length === 0) return undefined;
  return {
    rps: median(mine.map((s) => s.load.rps)),
    p50Ms: median(mine.map((s) => s.load.p50Ms)),
    p99Ms: median(mine.map((s) => s.load.p99Ms)),
    cpuUsPerRequest: median(mine.map((s) => (s.load.requests > 0 ? (s.cpuSeconds * 1e6) / s.load.requests : NaN))),
    errors: mine.reduce((sum, s) => sum + s.load.errors, 0),
    originRequests: mine.reduce((sum, s) => sum + s.originRequests, 0),
    runs: mine.length,
  };
}

export function targetsOf(samples: readonly { target: string }[]): string[] {
  return [...new Set(samples.map((sample) => sample.target))];
}

/** Memory beyond the body bytes, per object. */
export function overheadPerObject(sample: MemorySample): number {
  return (sample.rssAfterBytes - sample.rssBeforeBytes - sample.bodyBytes) / sample.objects;
}

export interface Bar {
  readonly name: string;
  readonly goal: string;
  readonly measured: string;
  readonly verdict: 'met' | 'missed' | 'not measured';
}

/** The issue's targets, judged from this run's figures. */
export function bars(report: Pick<BenchReport, 'scenarios'>): Bar[] {
  const find = (id: string) => report.scenarios.find((scenario) => scenario.id === id);
  const throughput = (id: string, target: string) => {
    const scenario = find(id);
    return scenario?.kind === 'throughput' ? summarize(scenario.samples, target) : undefined;
  };
  const out: Bar[] = [];
  const judge = (name: string, goal: string, value: number | undefined, ok: (v: number) => boolean, show: (v: number) => string) => {
    out.push(
      value === undefined || !Number.isFinite(value)
        ? { name, goal, measured: '—', verdict: 'not measured' }
        : { name, goal, measured: show(value), verdict: ok(value) ? 'met' : 'missed' },
    );
  };
  const l1 = throughput('hit-1k', LACQUER);
  const v1 = throughput('hit-1k', 'varnish');
  judge('1 KiB hit throughput', '≥ 1.0× Varnish', l1 && v1 ? ratio(l1.rps, v1.rps) : undefined, (v) => v >= 1, times);
  judge('1 KiB hit p99', '≤ Varnish p99', l1 && v1 ? ratio(l1.p99Ms, v1.p99Ms) : undefined, (v) => v <= 1, (v) => `${times(v)} Varnish's (${ms(l1!.p99Ms)} vs ${ms(v1!.p99Ms)})`);
  // For reference: the bars are the default's (one process), but Varnish's threads take every core, as `workers` lets Lacquer do.
  const w1 = throughput('hit-1k', LACQUER_WORKERS);
  if (w1 !== undefined) {
    judge('1 KiB hit throughput, workers: 2 (reference)', '≥ 1.0× Varnish', v1 ? ratio(w1.rps, v1.rps) : undefined, (v) => v >= 1, times);
    judge('1 KiB hit p99, workers: 2 (reference)', '≤ Varnish p99', v1 ? ratio(w1.p99Ms, v1.p99Ms) : undefined, (v) => v <= 1, (v) => `${times(v)} Varnish's (${ms(w1.p99Ms)} vs ${ms(v1!.p99Ms)})`);
  }
  const l100 = throughput('hit-100k', LACQUER);
  const v100 = throughput('hit-100k', 'varnish');
  judge('100 KiB hit throughput', '≥ 1.2× Varnish', l100 && v100 ? ratio(l100.rps, v100.rps) : undefined, (v) => v >= 1.2, times);
  judge('CPU per 1 KiB hit', '≤ 15 µs', l1?.cpuUsPerRequest, (v) => v <= 15, (v) => `${v.toFixed(1)} µs`);
  const lp = throughput('pass', LACQUER);
  const op = throughput('pass', ORIGIN_DIRECT);
  judge('uncacheable pass-through p50 overhead', '≤ +30% over the origin direct', lp && op ? ratio(lp.p50Ms, op.p50Ms) - 1 : undefined, (v) => v <= 0.3, (v) => `${v >= 0 ? '+' : ''}${(v * 100).toFixed(0)}% (${ms(lp!.p50Ms)} vs ${ms(op!.p50Ms)})`);
  const burst = find('coalesce');
  if (burst?.kind === 'burst') {
    const mine = burst.samples.filter((s) => s.target === LACQUER);
    const requests = mine.length === 0 ? undefined : Math.max(...mine.map((s) => s.originRequests));
    judge('coalescing burst origin requests', '1', requests, (v) => v === 1, (v) => `${v} (most in any round)`);
    const wall = mine.length === 0 ? undefined : median(mine.map((s) => s.wallMs)) / burst.originDelayMs;
    judge('coalescing burst completion', `≤ 1.1× the origin's ${burst.originDelayMs} ms`, wall, (v) => v <= 1.1, (v) => `${times(v)} (${ms(v * burst.originDelayMs)})`);
  } else {
    judge('coalescing burst', '1 origin request, ≤ 1.1× delay', undefined, () => false, String);
  }
  const memory = find('memory');
  const lm = memory?.kind === 'memory' ? memory.samples.find((s) => s.target === LACQUER) : undefined;
  judge('memory overhead per object', '≤ 1 KiB beyond the body', lm === undefined ? undefined : overheadPerObject(lm), (v) => v <= 1024, bytes);
  return out;
}

export function times(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '—';
}

export function ms(value: number): string {
  return Number.isFinite(value) ? `${value < 10 ? value.toFixed(2) : value.toFixed(0)} ms` : '—';
}

export function bytes(value: number): string {
  if (!Number.isFinite(value)) return '—';
  const size = Math.abs(value);
  if (size >= 1024 ** 3) return `${(value / 1024 ** 3).toFixed(2)} GiB`;
  if (size >= 1024 ** 2) return `${(value / 1024 ** 2).toFixed(1)} MiB`;
  return size >= 1024 ? `${(value / 1024).toFixed(2)} KiB` : `${value.toFixed(0)} B`;
}

function num(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : '—';
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

/** Every ratio of one summary to another, `a / b`. */
export function ratios(a: ThroughputSummary, b: ThroughputSummary): string {
  return `req/s ${times(ratio(a.rps, b.rps))}, p50 ${times(ratio(a.p50Ms, b.p50Ms))}, p99 ${times(ratio(a.p99Ms, b.p99Ms))}, CPU/req ${times(ratio(a.cpuUsPerRequest, b.cpuUsPerRequest))}`;
}

/** The per-target table of a throughput run, and the most runs any target had. */
function throughputTable(samples: readonly RunSample[]): { text: string; runs: number } {
  const summaries = targetsOf(samples).map((target) => [target, summarize(samples, target)!] as const);
  const rows = summaries.map(([target, s]) => [target, num(s.rps), ms(s.p50Ms), ms(s.p99Ms), Number.isFinite(s.cpuUsPerRequest) ? s.cpuUsPerRequest.toFixed(1) : '—', String(s.errors), String(s.originRequests), String(s.runs)]);
  return { text: table(['target', 'req/s', 'p50', 'p99', 'CPU µs/req', 'errors', 'origin reqs', 'runs'], rows), runs: Math.max(0, ...summaries.map(([, s]) => s.runs)) };
}

function throughputSection(scenario: Extract<ScenarioResult, { kind: 'throughput' }>): string {
  const targets = targetsOf(scenario.samples);
  const { text, runs } = throughputTable(scenario.samples);
  const lines = [text];
  const mine = summarize(scenario.samples, LACQUER);
  if (mine !== undefined && targets.length > 1) {
    lines.push('');
    for (const peer of targets.filter((t) => t !== LACQUER)) lines.push(`- Lacquer vs ${peer}: ${ratios(mine, summarize(scenario.samples, peer)!)}`);
  }
  return [`### ${scenario.title}`, `${scenario.connections} connections; medians of ${runs} interleaved runs.`, '', ...lines, ...notes(scenario.notes)].join('\n');
}

function onOffSection(scenario: Extract<ScenarioResult, { kind: 'on-off' }>): string {
  const { text, runs } = throughputTable(scenario.samples);
  const on = summarize(scenario.samples, scenario.on);
  const off = summarize(scenario.samples, scenario.off);
  const verdict = on !== undefined && off !== undefined ? `- on / off: ${ratios(on, off)}` : '- on / off: not measured (a side has no runs)';
  return [`### ${scenario.title}`, `${scenario.connections} connections; medians of ${runs} interleaved runs.`, '', text, '', verdict, ...notes(scenario.notes)].join('\n');
}

function burstSection(scenario: Extract<ScenarioResult, { kind: 'burst' }>): string {
  const wall = (target: string) => median(scenario.samples.filter((s) => s.target === target).map((s) => s.wallMs));
  const floor = wall(ORIGIN_DIRECT);
  const rows = targetsOf(scenario.samples).map((target) => {
    const mine = scenario.samples.filter((s) => s.target === target);
    return [
      target,
      String(mine[0]?.clients ?? 0),
      mine.map((s) => s.originRequests).join(', '),
      ms(wall(target)),
      ms(median(mine.map((s) => s.firstAnswerMs ?? NaN))),
      ms(median(mine.map((s) => s.maxLatencyMs))),
      times(wall(target) / scenario.originDelayMs),
      times(ratio(wall(target), floor)),
      String(mine.reduce((sum, s) => sum + s.errors, 0)),
    ];
  });
  return [
    `### ${scenario.title}`,
    `A cold key per round; the origin answers after ${scenario.originDelayMs} ms. Burst time is from the first request sent to the last answer (median over rounds).`,
    '',
    table(['target', 'clients', 'origin requests (each round)', 'burst time', 'first answer', 'slowest request', 'vs origin delay', 'vs origin direct', 'errors'], rows),
    ...notes(scenario.notes),
  ].join('\n');
}

function memorySection(scenario: Extract<ScenarioResult, { kind: 'memory' }>): string {
  const rows = scenario.samples.map((s) => [
    s.target,
    num(s.objects),
    bytes(s.bodyBytes),
    bytes(s.rssAfterBytes - s.rssBeforeBytes),
    times((s.rssAfterBytes - s.rssBeforeBytes) / s.bodyBytes),
    bytes(overheadPerObject(s)),
  ]);
  return [`### ${scenario.title}`, '', table(['target', 'objects', 'body bytes', 'RSS growth', 'growth / body', 'overhead per object'], rows), ...notes(scenario.notes)].join('\n');
}

function notes(list: readonly string[]): string[] {
  return list.length === 0 ? [] : ['', ...list.map((note) => `- ${note}`)];
}

export function renderMarkdown(report: BenchReport): string {
  const sections = report.scenarios.map((scenario) => {
    switch (scenario.kind) {
      case 'throughput':
        return throughputSection(scenario);
      case 'burst':
        return burstSection(scenario);
      case 'memory':
        return memorySection(scenario);
      case 'on-off':
        return onOffSection(scenario);
      case 'not-run':
        return [`### ${scenario.title}`, '', ...scenario.notes.map((note) => `- ${note}`)].join('\n');
    }
  });
  const barRows = bars(report).map((bar) => [bar.name, bar.goal, bar.measured, bar.verdict]);
  const configs = Object.entries(report.peerConfigs).map(([name, text]) => `#### ${name}\n\n\`\`\`\n${text.trimEnd()}\n\`\`\``);
  return [
    `# Lacquer benchmark (${report.mode})`,
    '',
    `Started ${report.startedAt}, finished ${report.finishedAt}. ${report.machine.cpus} CPUs, Node ${report.machine.node}, load average at start ${report.machine.loadAverage.map((l) => l.toFixed(2)).join(' ')}.`,
    `${report.machine.shared}`,
    '',
    `Load generator: ${report.generator}. Targets: ${report.targets.join(', ')}.${report.skipped.length === 0 ? '' : ` Skipped: ${report.skipped.join('; ')}.`}`,
    '',
    ...Object.entries(report.versions).map(([name, version]) => `- ${name}: ${version}`),
    '',
    '## Bars',
    '',
    table(['bar', 'goal', 'measured', 'verdict'], barRows),
    '',
    '## Scenarios',
    '',
    sections.join('\n\n'),
    '',
    '## Peer configuration',
    '',
    configs.join('\n\n'),
    '',
  ].join('\n');
}
