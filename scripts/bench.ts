/**
 * `npm run bench`: Lacquer against Varnish and nginx (when installed) on
 * loopback, scenario by scenario, targets interleaved A/B/A/B, medians of
 * three bounded runs. Writes reports/bench.md and reports/bench.json.
 *
 *   --quick          one short round per scenario (a smoke run)
 *   --only LIST      targets to run, e.g. lacquer,varnish (default: all installed,
 *                    and the node:http floor; name it "floor" to pick it)
 *   --out-dir DIR    where the reports go (default reports)
 *   --generator G    wrk or autocannon (default: wrk when installed)
 *   --scenarios LIST which scenarios to run (default all): hit-1k, hit-100k, hit-1m, zipf,
 *                    pass, coalesce, swr, hit-metrics, memory
 *   --work-dir DIR   where the servers' cache directories go (default /dev/shm
 *                    when writable, else the system's temporary directory)
 *   --compare CLI    also run another Lacquer build (its dist/proxy/cli.js) as the
 *                    target "lacquer-compare", interleaved with this one: a before/after
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { detectGenerator, runCount, runLoad, versionOf, writeWrkScripts, type Generator } from './bench/load.js';
import { MEM_OBJECT_BYTES, PATHS, SLOW_DELAY_MS } from './bench/origin.js';
import { killAllStartedSync, cpuSeconds, rssBytes, stopAllStarted } from './bench/procs.js';
import { bars, LACQUER, LACQUER_WORKERS, ORIGIN_DIRECT, renderMarkdown, type BenchReport, type BurstSample, type MemorySample, type RunSample, type ScenarioResult } from './bench/report.js';
import { PEER_BINARIES, STARTERS, startNodeFloor, startOrigin, type Target, type TargetName } from './bench/targets.js';
import { measureBurst } from './bench/burst.js';
import { startScraper } from './bench/scraper.js';
import { zipfSequence } from './bench/zipf.js';

interface Plan {
  readonly mode: 'full' | 'quick';
  readonly rounds: number;
  readonly runSeconds: number;
  /** Requests each target answers before its measured runs (JIT, connection pools), in one bounded burst of the scenario's own connections. */
  readonly warmRequests: number;
  readonly connections: number;
  readonly passConnections: number;
  readonly burstClients: number;
  readonly zipfKeys: number;
  readonly zipfSequence: number;
  readonly memoryObjects: number;
}

// Runs of 2 s (about 100,000 hits each at 1 KiB) keep a full run under 5 minutes with the floor, the metrics pair and the memory-only row.
const FULL: Plan = { mode: 'full', rounds: 3, runSeconds: 2, warmRequests: 2000, connections: 50, passConnections: 1, burstClients: 200, zipfKeys: 100_000, zipfSequence: 100_000, memoryObjects: 100_000 };
const QUICK: Plan = { ...FULL, mode: 'quick', rounds: 1, runSeconds: 1, warmRequests: 500, zipfSequence: 20_000, memoryObjects: 5_000 };

const GIB = 1024 ** 3;

/**
 * Where the servers' cache directories go: a tmpfs when the machine has
 * one. No scenario measures disk speed (hits come from memory, RSS does
 * not count the page cache), but filling and then removing the gigabyte
 * of entries the memory scenario writes would take a minute of the run
 * on a disk.
 */
function defaultWorkDir(): string {
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}
const WORKERS_NOTE =
  'lacquer (workers: 2) is the same build with `workers: 2`: a primary and two worker processes sharing the port, as Varnish’s threads share its cores. The bars are judged on the default, one process; on two cores the load generator competes with both workers.';
const FLOOR_NOTE =
  'The node:http floor is not a cache: it is Node’s HTTP server answering the same bytes from a Map (scripts/bench/node-floor.ts), the most one Node process can serve here. Lacquer’s distance to it is Lacquer’s own cost; the floor’s distance to a peer is Node’s.';
const SHARED_NOTE =
  'The load generator runs on the same machine as the servers, and the machine may be shared with other work: absolute figures are noisy, so read the medians and the ratios taken side by side in this run.';

interface Context {
  readonly plan: Plan;
  readonly generator: Generator;
  readonly origin: Target;
  readonly targets: readonly Target[];
  /** The targets and, unless left out, the node:http floor. */
  readonly hitTargets: readonly Target[];
  readonly tmpDir: string;
  readonly scripts: { fixed: string; paths: string };
  readonly log: (line: string) => void;
  /** Another Lacquer build measured side by side (--compare). */
  readonly compare: string | undefined;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      'out-dir': { type: 'string', default: 'reports' },
      compare: { type: 'string' },
      scenarios: { type: 'string' },
      generator: { type: 'string' },
      'work-dir': { type: 'string' },
    },
  });
  const plan = values.quick ? QUICK : FULL;
  const log = (line: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
  const startedAt = new Date().toISOString();
  const tmpDir = mkdtempSync(join(values['work-dir'] ?? defaultWorkDir(), 'lacquer-bench-'));
  const cleanup = () => {
    killAllStartedSync();
    rmSync(tmpDir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stopping = true;
      log(`${signal}: stopping`);
      // Let the servers stop on their own first (nginx's master takes its workers down), then make sure.
      void Promise.race([stopAllStarted(), sleep(8000)]).finally(() => {
        cleanup();
        process.exit(130);
      });
    });
  }

  const only = values.only?.split(',').map((name) => name.trim());
  const wanted = (only?.filter((name) => name !== 'floor') ?? ['lacquer', 'varnish', 'nginx']) as TargetName[];
  if (values.generator !== undefined && values.generator !== 'wrk' && values.generator !== 'autocannon') throw new Error(`--generator: expected wrk or autocannon, got ${values.generator}`);
  const generator: Generator = values.generator ?? detectGenerator();
  log(`load generator: ${generator}${generator === 'autocannon' ? ' (wrk is not installed)' : ''}`);

  const origin = await startOrigin();
  log(`bench origin at ${origin.url}`);
  const skipped: string[] = [];
  const targets: Target[] = [];
  const peerConfigs: Record<string, string> = {};
  const versions: Record<string, string> = { node: process.version, lacquer: 'this checkout (dist/proxy/cli.js)' };
  if (generator === 'wrk') versions['wrk'] = versionOf('wrk', ['--version']);
  versions['cache directories under'] = tmpDir;
  for (const name of wanted) {
    if (name !== 'lacquer' && spawnSync(PEER_BINARIES[name], ['-h']).error !== undefined) {
      skipped.push(`${name} (${PEER_BINARIES[name]} is not installed)`);
      log(`skipping ${name}: ${PEER_BINARIES[name]} is not installed`);
      continue;
    }
    try {
      const target = await STARTERS[name]({ originUrl: origin.url, tmpDir, cacheBytes: GIB });
      targets.push(target);
      log(`${name} at ${target.url}`);
    } catch (error) {
      skipped.push(`${name} (failed to start: ${error instanceof Error ? error.message.split('\n')[0] : String(error)})`);
      log(`skipping ${name}: ${String(error)}`);
    }
  }
  if (values.compare !== undefined && targets.some((target) => target.name === LACQUER)) {
    const compare = await STARTERS.lacquer({ originUrl: origin.url, tmpDir, cacheBytes: GIB, cliPath: values.compare, label: 'lacquer-compare' });
    targets.splice(1, 0, compare);
    versions['lacquer-compare'] = values.compare;
    log(`lacquer-compare (${values.compare}) at ${compare.url}`);
  }
  if (!targets.some((target) => target.name === LACQUER)) throw new Error('Lacquer did not start; nothing to measure');
  if (targets.some((t) => t.name === 'varnish')) versions['varnish'] = versionOf('varnishd', ['-V']);
  if (targets.some((t) => t.name === 'nginx')) versions['nginx'] = versionOf('nginx', ['-v']);
  for (const target of targets) if (target.config !== undefined) peerConfigs[target.name] = target.config;

  // The floor is measured in the hit scenarios only: it caches nothing, so it has no miss, burst, stale or memory figure.
  const hitTargets = [...targets];
  if (only === undefined || only.includes('floor')) {
    const floor = await startNodeFloor(origin.url);
    hitTargets.push(floor);
    peerConfigs[floor.name] = floor.config!;
    log(`${floor.name} at ${floor.url}`);
  }

  // Varnish's threads use every core; Lacquer does with `workers`. Measured beside the rest at 1 KiB, where one thread is the limit.
  const withWorkers: Target[] = [];
  if (only === undefined || only.includes('lacquer')) {
    const workers = await STARTERS.lacquer({ originUrl: origin.url, tmpDir, cacheBytes: GIB, label: LACQUER_WORKERS, workers: 2 });
    withWorkers.push(workers);
    peerConfigs[workers.name] = workers.config!;
    log(`${workers.name} at ${workers.url}`);
  }

  const context: Context = { plan, generator, origin, targets, hitTargets, tmpDir, scripts: writeWrkScripts(tmpDir), log, compare: values.compare };
  const scenarios: ScenarioResult[] = [];
  const hit = (id: string, title: string, path: string, withFloor = true, warmRequests?: number, extra: readonly Target[] = [], runSeconds?: number) => {
    const measured = [...(withFloor ? hitTargets : targets), ...extra];
    return throughputScenario(context, {
      id,
      title,
      path,
      targets: measured,
      connections: plan.connections,
      prime: [path],
      notes: [
        ...(withFloor && hitTargets.length > targets.length ? [FLOOR_NOTE] : []),
        ...(extra.length > 0 ? [WORKERS_NOTE] : []),
        ...(runSeconds === undefined ? [] : [`Runs of ${runSeconds} s here (over 3,000 answers each), to keep a full run under 5 minutes.`]),
      ],
      ...(warmRequests === undefined ? {} : { warmRequests }),
      ...(runSeconds === undefined ? {} : { runSeconds }),
    });
  };

  const chosen = values.scenarios?.split(',').map((id) => id.trim());
  const run = async (id: string, scenario: () => Promise<ScenarioResult> | ScenarioResult) => {
    if (chosen === undefined || chosen.includes(id)) scenarios.push(await scenario());
  };
  await run('hit-1k', () => hit('hit-1k', '1 KiB hit', PATHS.hit1k, true, undefined, withWorkers));
  await Promise.all(withWorkers.map((target) => target.stop()));
  await run('hit-100k', () => hit('hit-100k', '100 KiB hit', PATHS.hit100k));
  // At 1 MiB every target is bound by copying bytes through loopback; the floor would add time and nothing to read.
  await run('hit-1m', () => hit('hit-1m', '1 MiB hit', PATHS.hit1m, false, 200, [], Math.min(1, plan.runSeconds)));
  await run('zipf', () => zipfScenario(context));
  await run('pass', () =>
    throughputScenario(context, {
      id: 'pass',
      title: 'Uncacheable pass-through (Cache-Control: no-store) vs the origin direct',
      path: PATHS.pass,
      targets: [{ ...origin, name: ORIGIN_DIRECT }, ...targets],
      connections: plan.passConnections,
      prime: [],
      notes: [
        'Every request reaches the origin. One connection, so latency is the time added per request rather than queueing behind a saturated core (the hit scenarios measure throughput).',
        'The bench origin answers at once, so the ratio compares the proxy hop against almost nothing; the absolute p50 difference is the time the hop adds.',
        'nginx runs with proxy_cache_lock on, which also holds concurrent requests for an uncacheable URL behind each other (it has no hit-for-pass); with one connection that cost does not show.',
      ],
    }),
  );
  await run('coalesce', () => burstScenario(context));
  await run('swr', () =>
    throughputScenario(context, {
      id: 'swr',
      title: 'stale-while-revalidate under load (max-age=1, stale-while-revalidate=30; the origin takes 50 ms)',
      path: PATHS.swr,
      targets,
      connections: plan.connections,
      prime: [PATHS.swr],
      notes: ['The entry goes stale every second; a refresh that held a client up would show as a p99 near 50 ms. Origin requests should be about one per second of load.'],
    }),
  );
  await run('hit-metrics', () => metricsScenario(context));
  await run('memory', () => memoryScenario(context));

  const report: BenchReport = {
    startedAt,
    finishedAt: new Date().toISOString(),
    mode: plan.mode,
    machine: { cpus: cpus().length, node: process.version, loadAverage: loadavg(), shared: SHARED_NOTE },
    generator: generator === 'wrk' ? 'wrk, 1 thread' : 'autocannon, in the bench process (it records latency in whole milliseconds: sub-millisecond p50s read 0 and their ratios are not measured; install wrk for these)',
    targets: targets.map((t) => t.name),
    skipped,
    versions,
    peerConfigs,
    scenarios,
  };
  const outDir = resolve(values['out-dir']);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'bench.json'), `${JSON.stringify({ ...report, bars: bars(report) }, null, 2)}\n`);
  writeFileSync(join(outDir, 'bench.md'), renderMarkdown(report));
  log(`wrote ${join(outDir, 'bench.md')} and bench.json`);
  for (const bar of bars(report)) log(`${bar.verdict.padEnd(12)} ${bar.name}: ${bar.measured} (goal ${bar.goal})`);
  await stopAllStarted();
}

interface ThroughputOptions {
  readonly id: string;
  readonly title: string;
  readonly path?: string;
  /** A file of paths (one a line) cycled by the load generator, instead of one path. */
  readonly pathsFile?: string;
  readonly paths?: readonly string[];
  readonly targets: readonly Target[];
  readonly connections: number;
  readonly prime: readonly string[];
  readonly notes?: string[];
  /** Warm-up requests when the plan's would take long (large bodies). */
  readonly warmRequests?: number;
  /** Seconds per measured run, when not the plan's. */
  readonly runSeconds?: number;
  /** Started with each warm-up and measured run of a target, stopped when it ends (e.g. a metrics scraper). */
  readonly during?: (target: Target) => (() => Promise<void>) | undefined;
}

/** One scenario: prime and warm each target, then rounds of bounded runs, targets interleaved. */
async function throughputScenario(context: Context, options: ThroughputOptions): Promise<ScenarioResult> {
  const { plan, log } = context;
  log(`scenario ${options.id}: ${options.title}`);
  const spec = (target: Target, durationS: number) => ({
    url: options.path === undefined ? target.url : `${target.url}${options.path}`,
    connections: options.connections,
    durationS,
    ...(options.pathsFile === undefined ? {} : { pathsFile: options.pathsFile }),
    ...(options.paths === undefined ? {} : { paths: options.paths }),
  });
  for (const target of options.targets) {
    // Two requests each: the first may fill the cache, the second must be answerable from it.
    for (const path of options.prime) for (let i = 0; i < 2; i++) await (await fetch(`${target.url}${path}`)).arrayBuffer();
    const stopWarm = options.during?.(target);
    const warmPaths = options.paths ?? [options.path ?? '/'];
    const warm = await runCount(target.url, warmPaths, options.warmRequests ?? plan.warmRequests, options.connections);
    await stopWarm?.();
    if (warm.errors + warm.non2xx > 0) log(`  warm-up of ${target.name}: ${warm.errors + warm.non2xx} failed requests`);
  }
  const samples: RunSample[] = [];
  for (let round = 1; round <= plan.rounds; round++) {
    for (const target of options.targets) {
      const pids = target.pids();
      const originBefore = await originTotal(context.origin);
      const stopDuring = options.during?.(target);
      const cpuBefore = cpuSeconds(pids);
      const load = await runLoad(context.generator, spec(target, options.runSeconds ?? plan.runSeconds), context.scripts);
      const cpu = cpuSeconds(pids) - cpuBefore;
      await stopDuring?.();
      const originRequests = (await originTotal(context.origin)) - originBefore;
      samples.push({ round, target: target.name, load, cpuSeconds: cpu, originRequests });
      log(`  round ${round} ${target.name}: ${Math.round(load.rps)} req/s, p50 ${load.p50Ms.toFixed(2)} ms, p99 ${load.p99Ms.toFixed(2)} ms, ${((cpu * 1e6) / Math.max(1, load.requests)).toFixed(1)} µs CPU/req, ${load.errors} errors, ${originRequests} origin reqs`);
    }
  }
  return { kind: 'throughput', id: options.id, title: options.title, connections: options.connections, samples, notes: options.notes ?? [] };
}

/** Hits over 100,000 keys drawn from a Zipf(1) law; the keys the sequence uses are filled first. */
async function zipfScenario(context: Context): Promise<ScenarioResult> {
  const { plan, log } = context;
  const { ranks, distinct } = zipfSequence(plan.zipfKeys, plan.zipfSequence, 42);
  const paths = ranks.map(PATHS.zipf);
  const pathsFile = join(context.tmpDir, 'zipf-paths.txt');
  writeFileSync(pathsFile, `${paths.join('\n')}\n`);
  const fill = distinct.map(PATHS.zipf);
  for (const target of context.hitTargets) {
    log(`  filling ${target.name} with ${fill.length} Zipf keys`);
    await runCount(target.url, fill, fill.length, 128);
  }
  return throughputScenario(context, {
    id: 'zipf',
    title: `Hits over ${plan.zipfKeys.toLocaleString('en-US')} keys, Zipf(s=1), 1 KiB each`,
    pathsFile,
    paths,
    targets: context.hitTargets,
    connections: plan.connections,
    prime: [],
    notes: [...(context.hitTargets.length > context.targets.length ? [FLOOR_NOTE] : []), `A fixed sequence of ${paths.length.toLocaleString('en-US')} draws (seed 42) touching ${distinct.length.toLocaleString('en-US')} distinct keys, all filled before measuring.`],
  });
}

/**
 * 200 clients at once on a key nobody has asked for, with an origin that
 * takes 200 ms. The connections are opened and warmed before the clock
 * starts (scripts/bench/burst.ts), so the burst time is what the server
 * does between the first request and the last answer.
 */
async function burstScenario(context: Context): Promise<ScenarioResult> {
  const { plan, log } = context;
  log('scenario coalesce: cold-key burst');
  const samples: BurstSample[] = [];
  // The origin direct is the floor of this measurement: 200 clients each waiting on its own 200 ms answer, with no cache between.
  const burstTargets = [{ ...context.origin, name: ORIGIN_DIRECT }, ...context.targets];
  // The warm-up path must be cheap everywhere: a hit on the caches.
  for (const target of burstTargets) for (let i = 0; i < 2; i++) await (await fetch(`${target.url}${PATHS.hit1k}`)).arrayBuffer();
  for (let round = 1; round <= plan.rounds; round++) {
    for (const target of burstTargets) {
      // Target names may hold spaces and brackets ("origin (direct)"): only URL-safe characters go into the path.
      const path = PATHS.slow(`${target.name.replace(/[^A-Za-z0-9-]+/g, '-')}-${round}-${Date.now()}`);
      let sample: BurstSample;
      try {
        const burst = await measureBurst({ url: target.url, warmPath: PATHS.hit1k, path, clients: plan.burstClients });
        const originRequests = await originCount(context.origin, path);
        sample = { round, target: target.name, clients: plan.burstClients, originRequests, wallMs: burst.spanMs, maxLatencyMs: burst.slowestMs, firstAnswerMs: burst.firstAnswerMs, errors: burst.non2xx };
        log(`  round ${round} ${target.name}: requests written over ${burst.writeMs.toFixed(1)} ms, first answer after ${burst.firstAnswerMs.toFixed(1)} ms`);
      } catch (error) {
        // A burst that fails is recorded as one (its time unknown), not allowed to end the whole bench.
        log(`  round ${round} ${target.name}: failed: ${error instanceof Error ? error.message : String(error)}`);
        sample = { round, target: target.name, clients: plan.burstClients, originRequests: await originCount(context.origin, path), wallMs: NaN, maxLatencyMs: NaN, errors: plan.burstClients };
      }
      samples.push(sample);
      log(`  round ${round} ${target.name}: ${sample.originRequests} origin request(s), burst ${sample.wallMs.toFixed(1)} ms, slowest ${sample.maxLatencyMs.toFixed(1)} ms, ${sample.errors} errors`);
    }
  }
  return {
    kind: 'burst',
    id: 'coalesce',
    title: `Coalescing: ${plan.burstClients} concurrent clients on a cold key`,
    originDelayMs: SLOW_DELAY_MS,
    samples,
    notes: [
      `Each client first opens a keep-alive connection and fetches ${PATHS.hit1k} (a hit) on it; then all ${plan.burstClients} requests for the cold key are written at once, and the burst time runs from the first written to the end of the last response. Connection setup is outside the measurement.`,
      'The origin direct row (every client waits on the origin itself, no cache between) is the floor: what 200 answers after 200 ms cost the origin and the client with no proxy at all.',
      'The slowest request is timed from its own request written to its response’s end.',
    ],
  };
}

const METRICS_OFF = 'lacquer (metrics off)';
const METRICS_ON = 'lacquer (metrics on)';
const SCRAPE_INTERVAL_MS = 1000;

/**
 * The 1 KiB hit with metrics on (the bench's Lacquer, at its default) and
 * off (a second Lacquer started with `metrics.enabled: false`), runs
 * interleaved. While the metrics-on side runs, a scraper reads its /metrics
 * every second, so rendering the registry counts too.
 */
async function metricsScenario(context: Context): Promise<ScenarioResult> {
  const title = '1 KiB hit, metrics on vs off';
  if (!context.targets.some((target) => target.name === LACQUER)) return { kind: 'not-run', id: 'hit-metrics', title, notes: ['Not run: Lacquer is not among the targets.'] };
  // Both sides start fresh for this scenario: the bench's own Lacquer has by now stored every earlier scenario's keys, and a larger heap costs
  // each hit more (collection, cache misses) whatever metrics do.
  const on = await STARTERS.lacquer({ originUrl: context.origin.url, tmpDir: context.tmpDir, cacheBytes: GIB, label: METRICS_ON });
  const off = await STARTERS.lacquer({ originUrl: context.origin.url, tmpDir: context.tmpDir, cacheBytes: GIB, label: METRICS_OFF, metrics: false });
  context.log(`${METRICS_ON} at ${on.url}, ${METRICS_OFF} at ${off.url}`);
  let scrapes = 0;
  let failures = 0;
  let bytes = 0;
  try {
    const scenario = await throughputScenario(context, {
      id: 'hit-metrics',
      title,
      path: PATHS.hit1k,
      targets: [on, off],
      connections: context.plan.connections,
      prime: [PATHS.hit1k],
      during: (target) => {
        if (target !== on) return undefined;
        const scraper = startScraper(`${on.adminUrl}/metrics`, SCRAPE_INTERVAL_MS);
        return async () => {
          const tally = await scraper.stop();
          scrapes += tally.scrapes;
          failures += tally.failures;
          bytes += tally.bytes;
        };
      },
    });
    if (scenario.kind !== 'throughput') return scenario;
    return {
      kind: 'on-off',
      id: 'hit-metrics',
      title,
      connections: scenario.connections,
      on: METRICS_ON,
      off: METRICS_OFF,
      samples: scenario.samples,
      notes: [
        `Two Lacquers of this build, both started fresh for this scenario: one at its defaults (metrics on), one with \`metrics.enabled: false\` (no /metrics, no per-request recording).`,
        `During every warm-up and measured run of the on side, a scraper in the bench process read its /metrics every ${SCRAPE_INTERVAL_MS / 1000} s (far more often than a usual Prometheus interval): ${scrapes} scrapes, ${failures} failed, ${bytes > 0 && scrapes > 0 ? `${Math.round(bytes / scrapes).toLocaleString('en-US')} bytes each` : 'no body read'}.`,
      ],
    };
  } finally {
    await Promise.all([on.stop(), off.stop()]);
  }
}

/** RSS growth of a fresh Lacquer (and Varnish) filled with N objects of 10 KiB; nginx keeps its cache in files, so its RSS says nothing. */
/** The memory scenario's second Lacquer row: its memory tier alone. */
const MEMORY_ONLY = 'lacquer-memory-only';

async function memoryScenario(context: Context): Promise<ScenarioResult> {
  const { plan, log } = context;
  const warm = 1000;
  const n = plan.memoryObjects;
  const samples: MemorySample[] = [];
  const notes: string[] = [`Each target is started fresh; ${warm} objects are stored first (warming the code), RSS is read, then ${n.toLocaleString('en-US')} more objects of ${MEM_OBJECT_BYTES / 1024} KiB are stored and RSS is read again after 2 s.`];
  // The goal is judged on the default configuration (disk tier on); the memory-only row compares like with like against Varnish's malloc storage.
  const kinds: { name: string; start: TargetName; cliPath?: string; disk?: boolean; runs: string }[] = [{ name: LACQUER, start: 'lacquer', runs: LACQUER }];
  kinds.push({ name: MEMORY_ONLY, start: 'lacquer', disk: false, runs: LACQUER });
  if (context.compare !== undefined) kinds.push({ name: 'lacquer-compare', start: 'lacquer', cliPath: context.compare, runs: 'lacquer-compare' });
  kinds.push({ name: 'varnish', start: 'varnish', runs: 'varnish' });
  if (context.targets.some((t) => t.name === LACQUER)) notes.push(`${MEMORY_ONLY}: the same build with cache.disk.enabled: false (the memory tier alone, like Varnish's malloc storage); ${LACQUER} runs the default configuration, with its disk tier.`);
  for (const { name, start, cliPath, disk, runs } of kinds) {
    if (!context.targets.some((t) => t.name === runs)) continue;
    log(`scenario memory: ${name}, ${n} objects`);
    const target = await STARTERS[start]({ originUrl: context.origin.url, tmpDir: context.tmpDir, cacheBytes: 4 * GIB, label: `${name}-memory`, ...(cliPath === undefined ? {} : { cliPath }), ...(disk === undefined ? {} : { disk }) });
    try {
      const first = Array.from({ length: warm }, (_, i) => PATHS.mem(i));
      await runCount(target.url, first, first.length, 32);
      await sleep(1000);
      const rssBeforeBytes = rssBytes(target.pids());
      const rest = Array.from({ length: n }, (_, i) => PATHS.mem(warm + i));
      const result = await runCount(target.url, rest, rest.length, 128);
      if (result.non2xx + result.errors > 0) notes.push(`${name}: ${result.non2xx + result.errors} failed requests while filling`);
      await sleep(2000);
      const rssAfterBytes = rssBytes(target.pids());
      samples.push({ target: name, objects: n, bodyBytes: n * MEM_OBJECT_BYTES, rssBeforeBytes, rssAfterBytes });
      log(`  ${name}: RSS ${(rssBeforeBytes / 2 ** 20).toFixed(0)} MiB -> ${(rssAfterBytes / 2 ** 20).toFixed(0)} MiB`);
    } finally {
      await target.stop();
    }
  }
  if (context.targets.some((t) => t.name === 'nginx')) notes.push('nginx is not measured: its cache lives in files and the page cache, not in its RSS.');
  return { kind: 'memory', id: 'memory', title: `Memory: ${n.toLocaleString('en-US')} cached objects of 10 KiB`, samples, notes };
}

async function originTotal(origin: Target): Promise<number> {
  const response = await fetch(`${origin.url}/__total`);
  return ((await response.json()) as { total: number }).total;
}

async function originCount(origin: Target, path: string): Promise<number> {
  const response = await fetch(`${origin.url}/__count?path=${encodeURIComponent(path)}`);
  return ((await response.json()) as { count: number }).count;
}

/** Set on SIGINT/SIGTERM: the scenario then failing is expected, and the signal handler exits. */
let stopping = false;

main().catch(async (error: unknown) => {
  if (stopping) return;
  console.error(error);
  await stopAllStarted();
  process.exit(1);
});
