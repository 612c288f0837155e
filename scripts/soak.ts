import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'undici';
import { parseDuration, parseSize } from '../config/units.js';
import { expectedBody, startSoakOrigin, versionIn } from './soak/origin.js';

/**
 * `npm run soak [-- --duration 60s]`: Lacquer as a real process under a
 * steady mixed load (hits, misses, stale-while-revalidate, purges, origin
 * errors) for a bounded time, after a memory-bound phase that pushes
 * `--big` bytes of distinct objects through a `--memory` cache. Samples the
 * process's RSS and event-loop lag p99 (its own /metrics), checks every
 * answer's body, and ends with every cached entry checked against the
 * origin's current body. Writes reports/soak-<time>.{json,md}; exits 1 when
 * a body was wrong, an entry disagreed with the origin, the process died,
 * or RSS passed the ceiling.
 */

const MiB = 1024 * 1024;
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'dist/proxy/cli.js');
/** The RSS allowed beyond cache.memory.maxSize (README, Memory bound); with 64 MiB the soak measured 266 MiB at most (Node 20). */
const CEILING_OVERHEAD = 256 * MiB;

interface Options {
  durationMs: number;
  rate: number;
  memory: number;
  big: number;
  bigObject: number;
  ceiling: number;
  out: string;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10m' },
      rate: { type: 'string', default: '300' },
      memory: { type: 'string', default: '64MiB' },
      big: { type: 'string', default: '1GiB' },
      'big-object': { type: 'string', default: '256KiB' },
      // The memory bound plus a stated overhead: the idle process (about 105 MiB) and allocator slack.
      ceiling: { type: 'string' },
      out: { type: 'string', default: join(ROOT, 'reports') },
    },
  });
  return {
    durationMs: parseDuration(values.duration),
    rate: Number(values.rate),
    memory: parseSize(values.memory),
    big: parseSize(values.big),
    bigObject: parseSize(values['big-object']),
    ceiling: values.ceiling === undefined ? parseSize(values.memory) + CEILING_OVERHEAD : parseSize(values.ceiling),
    out: resolve(values.out),
  };
}

interface Sample {
  readonly atS: number;
  readonly phase: string;
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
  readonly lagP99Ms: number;
  readonly storeMiB: number;
  readonly entries: number;
  readonly storeErrors: number;
  readonly requests: number;
}

interface Lacquer {
  readonly child: ChildProcess;
  readonly url: string;
  readonly adminUrl: string;
  output(): string;
}

async function startLacquer(originUrl: string, memory: number): Promise<Lacquer> {
  const dir = mkdtempSync(join(tmpdir(), 'lacquer-soak-'));
  const file = join(dir, 'soak.yaml');
  // Bodies above 1 MiB (or a quarter of a small cache) are streamed through, as in production.
  const maxObject = Math.min(MiB, Math.floor(memory / 4));
  writeFileSync(file, `cache:\n  memory:\n    maxSize: ${memory}\n    maxObjectSize: ${maxObject}\n  disk:\n    enabled: false\nlog:\n  level: warn\n`);
  const child = spawn(process.execPath, [CLI, '--config', file, '--origin', originUrl, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'], {
    env: { ...process.env, LACQUER_LOG_LEVEL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out = (out + chunk.toString()).slice(-200_000)));
  child.stderr!.on('data', (chunk: Buffer) => (out = (out + chunk.toString()).slice(-200_000)));
  const deadline = Date.now() + 30_000;
  while (!/admin:\s+http/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`lacquer did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  child.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  return { child, url: /listening on (http:\/\/\S+)/.exec(out)![1]!, adminUrl: /admin:\s+(http:\/\/\S+)/.exec(out)![1]!, output: () => out };
}

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? 0 : Number(match[1]) * 1024;
}

async function scrape(adminUrl: string): Promise<Map<string, number>> {
  const response = await request(`${adminUrl}/metrics`);
  const text = await response.body.text();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const space = line.lastIndexOf(' ');
    values.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return values;
}

function sum(values: Map<string, number>, prefix: string): number {
  let total = 0;
  for (const [key, value] of values) if (key === prefix || key.startsWith(`${prefix}{`)) total += value;
  return total;
}

const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function main(): Promise<void> {
  const opts = options();
  const started = Date.now();
  const origin = await startSoakOrigin({ bigSize: opts.bigObject });
  const lacquer = await startLacquer(origin.url, opts.memory);
  const pid = lacquer.child.pid!;
  // Whatever happens to this script, the process it started does not outlive it.
  process.once('exit', () => {
    if (lacquer.child.exitCode === null && lacquer.child.signalCode === null) lacquer.child.kill('SIGKILL');
  });
  const client = new Agent({ connections: 64, keepAliveTimeout: 30_000 });
  let died: string | undefined;
  lacquer.child.once('exit', (code, signal) => (died ??= `exited with ${code ?? signal}`));

  const samples: Sample[] = [];
  let phase = 'idle';
  let lastRequests = 0;
  const sample = async () => {
    if (died !== undefined) return;
    try {
      const metrics = await scrape(lacquer.adminUrl);
      const requests = sum(metrics, 'lacquer_requests_total');
      samples.push({
        atS: round((Date.now() - started) / 1000),
        phase,
        rssMiB: round(procStatus(pid, 'VmRSS') / MiB),
        heapUsedMiB: round((metrics.get('lacquer_nodejs_heap_size_used_bytes') ?? 0) / MiB),
        lagP99Ms: round((metrics.get('lacquer_nodejs_eventloop_lag_p99_seconds') ?? 0) * 1000, 2),
        storeMiB: round(sum(metrics, 'lacquer_store_bytes') / MiB),
        entries: sum(metrics, 'lacquer_store_entries'),
        storeErrors: sum(metrics, 'lacquer_store_errors_total'),
        requests: requests - lastRequests,
      });
      lastRequests = requests;
    } catch (error) {
      died ??= `stopped answering /metrics: ${String(error)}`;
    }
  };
  await sample();
  const idleRss = procStatus(pid, 'VmRSS');
  const sampleEvery = Math.max(2_000, Math.min(15_000, Math.floor(opts.durationMs / 60)));
  const sampler = setInterval(() => void sample(), sampleEvery);

  const wrong: string[] = [];
  const statuses = new Map<string, number>();
  const latencies: number[] = [];
  const tally = (what: string) => statuses.set(what, (statuses.get(what) ?? 0) + 1);
  const note = (problem: string) => {
    if (wrong.length < 50) wrong.push(problem);
    else wrong.length++;
  };

  // Phase 1: the memory bound. Distinct objects, each read once, far more bytes than the cache holds.
  phase = 'memory-bound';
  const bigCount = Math.floor(opts.big / opts.bigObject);
  let nextBig = 0;
  const bigStarted = Date.now();
  const bigWorker = async () => {
    while (nextBig < bigCount && died === undefined) {
      const path = `/big/${nextBig++}`;
      try {
        const response = await request(lacquer.url + path, { dispatcher: client });
        const body = Buffer.from(await response.body.arrayBuffer());
        if (response.statusCode !== 200 || !body.equals(expectedBody(path, 1, opts.bigObject))) note(`${path}: status ${response.statusCode}, ${body.length} bytes`);
      } catch (error) {
        note(`${path}: ${(error as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, bigWorker));
  await sample();
  const bigPhase = {
    objects: bigCount,
    objectKiB: opts.bigObject / 1024,
    totalMiB: round((bigCount * opts.bigObject) / MiB),
    seconds: round((Date.now() - bigStarted) / 1000),
    peakRssMiB: round(procStatus(pid, 'VmHWM') / MiB),
    rssAfterMiB: round(procStatus(pid, 'VmRSS') / MiB),
  };
  log(`memory bound: ${bigPhase.totalMiB} MiB of distinct objects in ${bigPhase.seconds} s; peak RSS ${bigPhase.peakRssMiB} MiB, now ${bigPhase.rssAfterMiB} MiB`);

  // Phase 2: the soak. A steady, open-loop rate; past 512 requests in flight the generator sheds (and counts it).
  phase = 'soak';
  const hot = Array.from({ length: 200 }, (_, i) => `/hot/${i}`);
  const swr = Array.from({ length: 50 }, (_, i) => `/swr/${i}`);
  const flaky = Array.from({ length: 50 }, (_, i) => `/flaky/${i}`);
  const misses: string[] = [];
  /** The version each hot path had when its last purge completed: nothing older may be served after that. */
  const floor = new Map<string, number>();
  let inFlight = 0;
  let shed = 0;
  let sent = 0;
  let purges = 0;
  let purgeFailures = 0;

  const pick = (): string => {
    const roll = Math.random();
    if (roll < 0.55) return hot[Math.floor(hot.length * Math.random() ** 2)]!;
    if (roll < 0.7) return swr[Math.floor(swr.length * Math.random())]!;
    if (roll < 0.85) {
      const path = `/miss/${misses.length}`;
      misses.push(path);
      return path;
    }
    return flaky[Math.floor(flaky.length * Math.random())]!;
  };

  const one = async (path: string) => {
    const minimum = floor.get(path) ?? 1;
    const t0 = performance.now();
    try {
      const response = await request(lacquer.url + path, { dispatcher: client });
      const body = Buffer.from(await response.body.arrayBuffer());
      latencies.push(performance.now() - t0);
      const status = response.statusCode;
      tally(String(status));
      if (status === 200) {
        const version = versionIn(path, body);
        if (version === undefined || !body.equals(expectedBody(path, version, opts.bigObject))) note(`${path}: a body that is not the origin's (${body.length} bytes)`);
        else if (version < minimum) note(`${path}: v${version} served after v${minimum} was published and purged`);
        else if (version > origin.version(path)) note(`${path}: v${version} that the origin never sent`);
      } else if (!(path.startsWith('/flaky/') && status >= 500)) {
        note(`${path}: status ${status}`);
      }
    } catch (error) {
      tally('connection error');
      if (!path.startsWith('/flaky/')) note(`${path}: ${(error as Error).message}`);
    }
  };

  const soakStarted = Date.now();
  const end = soakStarted + opts.durationMs;
  const purger = setInterval(() => {
    const path = hot[Math.floor(hot.length * Math.random() ** 2)]!;
    const version = origin.publish(path);
    purges++;
    request(`${lacquer.adminUrl}/purge`, { method: 'POST', body: JSON.stringify({ urls: [path] }), dispatcher: client })
      .then(async (response) => {
        await response.body.text();
        if (response.statusCode !== 200) throw new Error(`purge answered ${response.statusCode}`);
        floor.set(path, Math.max(floor.get(path) ?? 1, version));
      })
      .catch(() => purgeFailures++);
  }, 500);
  let owed = 0;
  let lastTick = Date.now();
  let lastReport = Date.now();
  while (Date.now() < end && died === undefined) {
    await new Promise((r) => setTimeout(r, 10));
    const now = Date.now();
    owed += ((now - lastTick) / 1000) * opts.rate;
    lastTick = now;
    while (owed >= 1) {
      owed--;
      if (inFlight >= 512) {
        shed++;
        continue;
      }
      inFlight++;
      sent++;
      void one(pick()).finally(() => inFlight--);
    }
    if (now - lastReport > 30_000) {
      lastReport = now;
      const last = samples.at(-1);
      log(`${round((now - soakStarted) / 1000, 0)} s: ${sent} sent, RSS ${last?.rssMiB} MiB, lag p99 ${last?.lagP99Ms} ms, ${wrong.length} wrong`);
    }
  }
  clearInterval(purger);
  while (inFlight > 0) await new Promise((r) => setTimeout(r, 20));
  clearInterval(sampler);
  await sample();
  const soakSeconds = (Date.now() - soakStarted) / 1000;

  // Outcomes of the soak itself, before the consistency check adds its own (504 for what is not cached).
  const soakMetrics = died === undefined ? await scrape(lacquer.adminUrl) : new Map<string, number>();

  // The final check: every entry the cache holds must be the origin's current body.
  phase = 'consistency';
  await new Promise((r) => setTimeout(r, 1_000));
  let checked = 0;
  let cached = 0;
  const mismatches: string[] = [];
  const everyPath = [...hot, ...swr, ...flaky, ...misses];
  let nextCheck = 0;
  const checker = async () => {
    while (nextCheck < everyPath.length && died === undefined) {
      const path = everyPath[nextCheck++]!;
      const response = await request(lacquer.url + path, { headers: { 'cache-control': 'only-if-cached' }, dispatcher: client });
      const body = Buffer.from(await response.body.arrayBuffer());
      checked++;
      if (response.statusCode !== 200) continue;
      cached++;
      if (!body.equals(origin.bodyOf(path))) mismatches.push(`${path}: cached ${versionIn(path, body) ?? 'unknown'}, origin v${origin.version(path)}`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, checker));
  const finalMetrics = soakMetrics;

  const drainStarted = Date.now();
  lacquer.child.kill('SIGTERM');
  const exitCode = await new Promise<number | string | null>((resolveExit) => {
    if (lacquer.child.exitCode !== null) return resolveExit(lacquer.child.exitCode);
    lacquer.child.once('exit', (code, signal) => resolveExit(code ?? signal));
  });
  const drainMs = Date.now() - drainStarted;
  await client.close();
  await origin.close();

  const soakSamples = samples.filter((s) => s.phase === 'soak');
  const third = Math.max(1, Math.floor(soakSamples.length / 3));
  const firstThird = soakSamples.slice(0, third);
  const lastThird = soakSamples.slice(-third);
  const maxOf = (list: Sample[], field: keyof Sample) => Math.max(0, ...list.map((s) => s[field] as number));
  const sortedLatencies = latencies.sort((a, b) => a - b);
  const lags = soakSamples.map((s) => s.lagP99Ms).sort((a, b) => a - b);
  const outcomes: Record<string, number> = {};
  for (const [key, value] of finalMetrics) {
    const match = /^lacquer_requests_total\{outcome="(\w+)",status_class="(\w+)"\}$/.exec(key);
    if (match !== null) outcomes[`${match[1]} ${match[2]}`] = value;
  }
  const maxRssMiB = Math.max(maxOf(soakSamples, 'rssMiB'), bigPhase.peakRssMiB);
  const summary = {
    node: process.version,
    startedAt: new Date(started).toISOString(),
    config: { memoryMiB: round(opts.memory / MiB), rate: opts.rate, durationS: round(opts.durationMs / 1000), ceilingMiB: round(opts.ceiling / MiB) },
    idleRssMiB: round(idleRss / MiB),
    memoryBound: bigPhase,
    soak: {
      seconds: round(soakSeconds),
      sent,
      shed,
      achievedRate: round(sent / soakSeconds),
      clientStatuses: Object.fromEntries(statuses),
      latencyMs: { p50: round(percentile(sortedLatencies, 50), 2), p99: round(percentile(sortedLatencies, 99), 2), max: round(sortedLatencies.at(-1) ?? 0, 2) },
      purges,
      purgeFailures,
      distinctMisses: misses.length,
      serverOutcomes: outcomes,
      storeErrors: sum(finalMetrics, 'lacquer_store_errors_total'),
      staleOnOriginError: sum(finalMetrics, 'lacquer_stale_on_origin_error_total'),
      refreshes: sum(finalMetrics, 'lacquer_background_refreshes_started_total'),
      evictions: sum(finalMetrics, 'lacquer_store_evictions_total'),
      rssMiB: { firstThirdMax: maxOf(firstThird, 'rssMiB'), lastThirdMax: maxOf(lastThird, 'rssMiB'), max: maxOf(soakSamples, 'rssMiB') },
      heapUsedMiBMax: maxOf(soakSamples, 'heapUsedMiB'),
      eventLoopLagP99Ms: { median: percentile(lags, 50), max: lags.at(-1) ?? 0 },
      wrongBodies: wrong.length,
      wrongExamples: wrong.slice(0, 20),
    },
    consistency: { checked, cached, mismatches: mismatches.length, examples: mismatches.slice(0, 20) },
    exit: { code: exitCode, drainMs },
    died: died ?? null,
    samples,
  };
  const failures = [
    ...(summary.soak.wrongBodies > 0 ? [`${summary.soak.wrongBodies} wrong answers`] : []),
    ...(mismatches.length > 0 ? [`${mismatches.length} cached entries differ from the origin`] : []),
    ...(died !== undefined && exitCode !== 0 ? [`lacquer ${died}`] : []),
    ...(exitCode !== 0 ? [`exit code ${String(exitCode)} after SIGTERM`] : []),
    ...(maxRssMiB > opts.ceiling / MiB ? [`RSS ${maxRssMiB} MiB passed the ceiling of ${opts.ceiling / MiB} MiB`] : []),
  ];
  const report = { ...summary, failures, passed: failures.length === 0 };

  mkdirSync(opts.out, { recursive: true });
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
  const jsonFile = join(opts.out, `soak-${stamp}.json`);
  const mdFile = join(opts.out, `soak-${stamp}.md`);
  writeFileSync(jsonFile, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(mdFile, markdown(report));
  log(`${report.passed ? 'PASSED' : `FAILED: ${failures.join('; ')}`}\nreport: ${mdFile}\n        ${jsonFile}`);
  process.stdout.write(markdown(report));
  process.exitCode = report.passed ? 0 : 1;
}

type Report = Record<string, unknown> & {
  config: { memoryMiB: number; rate: number; durationS: number; ceilingMiB: number };
  idleRssMiB: number;
  memoryBound: { objects: number; objectKiB: number; totalMiB: number; seconds: number; peakRssMiB: number; rssAfterMiB: number };
  soak: {
    seconds: number;
    sent: number;
    shed: number;
    achievedRate: number;
    clientStatuses: Record<string, number>;
    latencyMs: { p50: number; p99: number; max: number };
    purges: number;
    purgeFailures: number;
    distinctMisses: number;
    serverOutcomes: Record<string, number>;
    storeErrors: number;
    staleOnOriginError: number;
    refreshes: number;
    evictions: number;
    rssMiB: { firstThirdMax: number; lastThirdMax: number; max: number };
    heapUsedMiBMax: number;
    eventLoopLagP99Ms: { median: number; max: number };
    wrongBodies: number;
    wrongExamples: string[];
  };
  consistency: { checked: number; cached: number; mismatches: number; examples: string[] };
  exit: { code: number | string | null; drainMs: number };
  samples: Sample[];
  failures: string[];
  passed: boolean;
  node: string;
  startedAt: string;
};

function markdown(r: Report): string {
  const s = r.soak;
  const lines = [
    `# Lacquer soak, ${r.startedAt} (Node ${r.node})`,
    '',
    `**${r.passed ? 'Passed' : `Failed: ${r.failures.join('; ')}`}**`,
    '',
    `Cache: memory tier ${r.config.memoryMiB} MiB, disk tier off. Target rate ${r.config.rate} req/s for ${r.config.durationS} s. RSS ceiling ${r.config.ceilingMiB} MiB. Idle RSS ${r.idleRssMiB} MiB.`,
    '',
    '## Memory bound',
    '',
    `${r.memoryBound.objects} distinct objects of ${r.memoryBound.objectKiB} KiB (${r.memoryBound.totalMiB} MiB) in ${r.memoryBound.seconds} s: peak RSS ${r.memoryBound.peakRssMiB} MiB, RSS after ${r.memoryBound.rssAfterMiB} MiB.`,
    '',
    '## Soak',
    '',
    '| figure | value |',
    '|---|---|',
    `| duration | ${s.seconds} s |`,
    `| requests sent (achieved rate) | ${s.sent} (${s.achievedRate}/s); shed by the generator: ${s.shed} |`,
    `| client statuses | ${Object.entries(s.clientStatuses).map(([k, v]) => `${k}: ${v}`).join(', ')} |`,
    `| client latency p50 / p99 / max | ${s.latencyMs.p50} / ${s.latencyMs.p99} / ${s.latencyMs.max} ms |`,
    `| outcomes (Lacquer's metrics, both phases) | ${Object.entries(s.serverOutcomes).map(([k, v]) => `${k}: ${v}`).join(', ')} |`,
    `| purges (failed) | ${s.purges} (${s.purgeFailures}) |`,
    `| background refreshes, stale served on origin error | ${s.refreshes}, ${s.staleOnOriginError} |`,
    `| evictions, store errors | ${s.evictions}, ${s.storeErrors} |`,
    `| RSS max in the first third / last third / overall | ${s.rssMiB.firstThirdMax} / ${s.rssMiB.lastThirdMax} / ${s.rssMiB.max} MiB |`,
    `| V8 heap used, max | ${s.heapUsedMiBMax} MiB |`,
    `| event-loop lag p99 per sample, median / max (prom-client, 10 ms resolution) | ${s.eventLoopLagP99Ms.median} / ${s.eventLoopLagP99Ms.max} ms |`,
    `| wrong answers | ${s.wrongBodies} |`,
    `| final check: paths checked, cached, differing from origin | ${r.consistency.checked}, ${r.consistency.cached}, ${r.consistency.mismatches} |`,
    `| exit after SIGTERM | ${String(r.exit.code)} in ${r.exit.drainMs} ms |`,
    '',
    ...(s.wrongExamples.length > 0 ? ['Wrong answers (first 20):', '', ...s.wrongExamples.map((w) => `- ${w}`), ''] : []),
    ...(r.consistency.examples.length > 0 ? ['Differing entries (first 20):', '', ...r.consistency.examples.map((w) => `- ${w}`), ''] : []),
    '## Samples',
    '',
    '| t (s) | phase | RSS MiB | heap MiB | lag p99 ms | store MiB | entries | req/sample | store errors |',
    '|---|---|---|---|---|---|---|---|---|',
    ...r.samples.map((x) => `| ${x.atS} | ${x.phase} | ${x.rssMiB} | ${x.heapUsedMiB} | ${x.lagP99Ms} | ${x.storeMiB} | ${x.entries} | ${x.requests} | ${x.storeErrors} |`),
    '',
  ];
  return lines.join('\n');
}

function log(line: string): void {
  process.stderr.write(`soak: ${line}\n`);
}

void main().catch((error: unknown) => {
  process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
