import cluster, { type Worker } from 'node:cluster';
import { resolve } from 'node:path';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Config } from '../../config/types.js';
import { aggregateWorkers, retire, type MetricsJson } from '../../metrics/cluster-aggregate.js';
import { PREFIX } from '../../metrics/registry.js';
import { DirectoryClaim } from '../store/disk-claim.js';
import { claimRetryMs, DirectoryHeldError } from '../store/disk-lock.js';
import { unlockDirectory } from '../store/disk-scan.js';
import { restartDelay, type BackoffOptions } from './backoff.js';
import { Gatherer } from './gather.js';
import { isWorkerMessage, WORKER_ENV, type PrimaryMessage, type WorkerMessage } from './messages.js';

/** How long past the drain deadline a worker may take to exit before the primary kills it. */
const STUCK_GRACE_MS = 5_000;

export interface PrimaryOptions {
  readonly config: Config;
  /** The config file read, for the banner. */
  readonly file: string | null;
  readonly workers: number;
  readonly backoff?: BackoffOptions;
  /** Longest wait for workers to apply a relayed purge or report metrics. Default 5 s. */
  readonly gatherTimeoutMs?: number;
  /** Reads the config again, for SIGHUP: the primary keeps the drain deadline its workers reload. */
  readonly reloadConfig?: () => Config;
}

interface Slot {
  readonly slot: number;
  worker: Worker | undefined;
  startedAt: number;
  /** Deaths in a row (see backoff.ts). */
  failures: number;
  /** The worker applies relayed purges and disk changes. */
  linked: boolean;
  up: boolean;
  restart: NodeJS.Timeout | undefined;
}

/**
 * The primary of `workers: N`: it serves no request itself. It starts N
 * workers that share the listening sockets (node:cluster), restarts one that
 * dies (backoff.ts), relays purges, disk tier changes and metrics scrapes
 * between them, and on SIGTERM or SIGINT has every worker drain and exits
 * 0 once all have. SIGHUP is forwarded to every worker that is serving
 * (one still starting reads the config file as it starts).
 */
export async function runPrimary(options: PrimaryOptions): Promise<void> {
  const { config } = options;
  const since = Date.now();
  const gatherTimeoutMs = options.gatherTimeoutMs ?? 5_000;
  let drainTimeout = config.shutdown.drainTimeout;
  const say = (message: string) => {
    if (config.log.level !== 'silent') process.stderr.write(`lacquer: ${message}\n`);
  };
  const fail = (message: string) => process.stderr.write(`lacquer: ${message}\n`);

  // The primary holds the disk tier's lock for all its workers, so no other Lacquer can use the directory.
  // While another holder keeps it, the workers serve without their disk tier, and the primary (and each
  // worker, waiting for the lock to name the primary) tries again in the background, as a single process does.
  const dir = config.cache.disk.enabled ? resolve(process.cwd(), config.cache.disk.path) : undefined;
  const claim =
    dir === undefined
      ? undefined
      : new DirectoryClaim({
          dir,
          onClaimed: () => say(`disk cache: ${dir} is free now; the workers' disk tier comes into use`),
          onFailed: (error) => fail(`disk cache: ${messageOf(error)}; the disk tier stays off`),
          // Each worker sees the lock name another holder too, and goes off and waits, as the primary does.
          onLost: (error) => fail(`disk cache: ${error.message}; the workers' disk tier is off until it is free (trying again every ${claimRetryMs() / 1000} s)`),
        });
  if (claim !== undefined) {
    try {
      await claim.first;
    } catch (error) {
      if (!(error instanceof DirectoryHeldError)) {
        fail(`could not start: ${messageOf(error)}`);
        process.exit(1);
      }
      fail(`disk cache: ${error.message}; the disk tier is off until it is free (trying again every ${claimRetryMs() / 1000} s)`);
    }
  }

  const registry = new Registry();
  new Gauge({ name: `${PREFIX}workers`, help: 'Workers the config asks for.', registers: [registry] }).set(options.workers);
  const alive = new Gauge({ name: `${PREFIX}workers_alive`, help: 'Workers running now.', registers: [registry] });
  const restarts = new Counter({ name: `${PREFIX}worker_restarts_total`, help: 'Workers started again after one died.', registers: [registry] });
  const reporting = new Gauge({ name: `${PREFIX}workers_reporting`, help: 'Workers whose metrics this scrape includes (fewer than workers_alive: a worker did not answer in time).', registers: [registry] });

  const slots: Slot[] = Array.from({ length: options.workers }, (_, i) => ({ slot: i + 1, worker: undefined, startedAt: 0, failures: 0, linked: false, up: false, restart: undefined }));
  const purges = new Gatherer<true>();
  const scrapes = new Gatherer<MetricsJson>();
  let stopping = false;
  let bannerShown = false;

  const send = (slot: Slot | undefined, message: PrimaryMessage): boolean => {
    const worker = slot?.worker;
    if (worker === undefined || !worker.isConnected()) return false;
    worker.send(message, undefined, () => undefined);
    return true;
  };
  const linkedOthers = (except: Slot) => slots.filter((other) => other !== except && other.linked && other.worker !== undefined);
  const countAlive = () => alive.set(slots.filter((slot) => slot.worker !== undefined).length);

  const fork = (slot: Slot) => {
    slot.restart = undefined;
    const worker = cluster.fork({ [WORKER_ENV.slot]: String(slot.slot), [WORKER_ENV.since]: String(since) });
    slot.worker = worker;
    slot.startedAt = Date.now();
    slot.linked = false;
    slot.up = false;
    countAlive();
    worker.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) onMessage(slot, worker, message);
    });
    worker.on('exit', (code, signal) => onExit(slot, worker, code, signal));
  };

  const onMessage = (slot: Slot, worker: Worker, message: WorkerMessage) => {
    switch (message.lq) {
      case 'hello':
        slot.linked = true;
        return;
      case 'up':
        slot.up = true;
        if (slot.failures > 0) say(`worker ${slot.slot} (pid ${worker.process.pid}) is serving again`);
        if (!bannerShown && slots.every((each) => each.up)) {
          bannerShown = true;
          banner(message);
        }
        return;
      case 'disk':
        for (const other of linkedOthers(slot)) send(other, { lq: 'disk', change: message.change });
        return;
      case 'purge': {
        const targets = linkedOthers(slot);
        void purges
          .ask(
            targets.map((target) => target.slot),
            gatherTimeoutMs,
            (target, id) => send(slots[target - 1], { lq: 'apply', id, purge: message.purge }),
          )
          .then(({ missing }) => {
            if (missing.length > 0) fail(`a purge was not confirmed by worker(s) ${missing.join(', ')} within ${gatherTimeoutMs} ms (dead or stuck)`);
            send(slot, { lq: 'purged', id: message.id, missed: missing.length });
          });
        return;
      }
      case 'applied':
        purges.answer(message.id, slot.slot, true);
        return;
      case 'scrape':
        void scrape().then(
          (text) => send(slot, { lq: 'scraped', id: message.id, text }),
          (error: unknown) => fail(`metrics scrape failed: ${String(error)}`),
        );
        return;
      case 'metrics':
        scrapes.answer(message.id, slot.slot, message.metrics);
        return;
    }
  };

  // Counters must never go down: a worker that misses a scrape is counted with its last report, and
  // what an exited worker counted stays in the totals (folded into `retired`).
  const lastReports = new Map<number, MetricsJson>();
  let retired: Promise<MetricsJson> = Promise.resolve([]);
  const scrape = async (): Promise<string> => {
    const targets = slots.filter((slot) => slot.linked && slot.worker !== undefined).map((slot) => slot.slot);
    const { answers } = await scrapes.ask(targets, gatherTimeoutMs, (target, id) => send(slots[target - 1], { lq: 'collect', id }));
    reporting.set(answers.size);
    for (const [worker, metrics] of answers) lastReports.set(worker, metrics);
    const reports = targets.flatMap((worker) => {
      const metrics = answers.get(worker) ?? lastReports.get(worker);
      return metrics === undefined ? [] : [{ worker, metrics }];
    });
    const combined = await aggregateWorkers(reports, await registry.getMetricsAsJSON(), await retired);
    return combined.metrics();
  };

  const onExit = (slot: Slot, worker: Worker, code: number | null, signal: string | null) => {
    if (slot.worker === worker) slot.worker = undefined;
    slot.linked = false;
    const last = lastReports.get(slot.slot);
    lastReports.delete(slot.slot);
    if (last !== undefined) retired = retired.then((sum) => retire(sum, last).catch(() => sum));
    purges.gone(slot.slot);
    scrapes.gone(slot.slot);
    countAlive();
    if (stopping) {
      // A worker that does not drain cleanly makes the primary's exit code 1.
      if (code !== 0) exitCode = 1;
      return maybeDone();
    }
    const how = signal === null ? `with code ${code}` : `on ${signal}`;
    if (!bannerShown && !slot.up) {
      // A worker that cannot start at all (port taken, directory refused): as a single process would, exit 1.
      fail(`worker ${slot.slot} exited ${how} before it could serve; stopping`);
      return void shutdown(1);
    }
    const decision = restartDelay(slot.failures, Date.now() - slot.startedAt, options.backoff);
    slot.failures = decision.failures;
    fail(`worker ${slot.slot} (pid ${worker.process.pid}) exited ${how}; starting a new one${decision.delayMs > 0 ? ` in ${decision.delayMs} ms` : ''}`);
    restarts.inc();
    slot.restart = setTimeout(() => {
      if (!stopping) fork(slot);
    }, decision.delayMs);
  };

  let exitCode = 0;
  let finished = false;
  const maybeDone = () => {
    if (finished || slots.some((slot) => slot.worker !== undefined)) return;
    finished = true;
    const done = () => process.exit(exitCode);
    if (dir === undefined || claim === undefined) return done();
    claim
      .stop()
      .then(() => unlockDirectory(dir))
      .then(done, done);
  };
  const shutdown = (code: number, why?: string) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    if (why !== undefined) say(`${why}, draining ${slots.filter((slot) => slot.worker !== undefined).length} worker(s)`);
    for (const slot of slots) {
      clearTimeout(slot.restart);
      slot.worker?.process.kill('SIGTERM');
    }
    // Each worker closes what is still in flight at shutdown.drainTimeout; one that is still there well after it is stuck.
    const stuck = setTimeout(() => {
      for (const slot of slots) {
        if (slot.worker === undefined) continue;
        fail(`worker ${slot.slot} (pid ${slot.worker.process.pid}) did not exit after the drain deadline; killing it`);
        exitCode = 1;
        slot.worker.process.kill('SIGKILL');
      }
    }, drainTimeout + STUCK_GRACE_MS);
    stuck.unref();
    maybeDone();
  };
  process.on('SIGTERM', () => shutdown(0, 'SIGTERM received'));
  process.on('SIGINT', () => shutdown(0, 'SIGINT received'));
  process.on('SIGHUP', () => {
    try {
      // The workers reload it too; the primary needs its drain deadline to know when a worker is stuck.
      if (options.reloadConfig !== undefined) drainTimeout = options.reloadConfig().shutdown.drainTimeout;
    } catch {
      // A config that does not validate: each worker logs why and keeps its own; the primary keeps its deadline.
    }
    for (const slot of slots) if (slot.up) slot.worker?.process.kill('SIGHUP');
  });

  const banner = (first: Extract<WorkerMessage, { lq: 'up' }>) => {
    if (config.log.level === 'silent') return;
    const pids = slots.map((slot) => slot.worker?.process.pid).join(', ');
    const lines = [
      `Lacquer is listening on ${first.proxyUrl}`,
      `  workers: ${options.workers} (pids ${pids}; primary ${process.pid})`,
      `  origin: ${first.originUrl}${first.exampleOrigin ? ' (the bundled example origin, one per worker; set --origin to use your own)' : ''}`,
      `  admin:  ${first.adminUrl}  (GET /healthz, /readyz, /metrics, /explain?url=…)`,
      `  config: ${options.file ?? 'built-in defaults'}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  };

  for (const slot of slots) fork(slot);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
