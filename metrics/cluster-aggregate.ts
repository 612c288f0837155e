import { AggregatorRegistry, Gauge, Registry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { PREFIX } from './registry.js';

/**
 * /metrics for several workers: every worker's registry, summed series by
 * series (prom-client's cluster aggregation), except where a sum is wrong:
 *
 * - the hit ratio is recomputed from the summed counters, and each worker's
 *   own ratio is kept as `lacquer_worker_cache_hit_ratio{worker}`;
 * - the disk tier is one directory every worker indexes whole, so its
 *   entries and bytes are taken from one worker, not added up N times
 *   (the memory tiers are each their own, and are summed);
 * - an average event-loop lag or a summed memory hides one sick worker, so
 *   each worker's p99 lag and resident memory are kept with a `worker` label.
 */

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export interface WorkerMetricsReport {
  /** The worker's slot, 1..N: the `worker` label. */
  readonly worker: number;
  readonly metrics: MetricsJson;
}

const CUMULATIVE = new Set(['counter', 'histogram']);
const HIT_RATIO = `${PREFIX}cache_hit_ratio`;
const HITS = `${PREFIX}cache_hits_total`;
const CACHEABLE = `${PREFIX}cacheable_requests_total`;
const SHARED_TIER_GAUGES = new Set([`${PREFIX}store_entries`, `${PREFIX}store_bytes`, `${PREFIX}store_max_bytes`]);
const SHARED_TIER = 'disk';

/** Per-worker copies of a worker's own unlabelled gauges: [its name, the copy's name, help]. */
const PER_WORKER: readonly (readonly [string, string, string])[] = [
  [`${PREFIX}nodejs_eventloop_lag_p99_seconds`, `${PREFIX}worker_eventloop_lag_p99_seconds`, "Each worker's event-loop lag, 99th percentile."],
  [`${PREFIX}process_resident_memory_bytes`, `${PREFIX}worker_resident_memory_bytes`, "Each worker's resident memory."],
];

/**
 * The counters and histograms of workers that have exited, summed: added to
 * every later scrape, so a total never goes down when a worker is replaced
 * (Prometheus would read the drop as a counter reset).
 */
export async function retire(retired: MetricsJson, last: MetricsJson): Promise<MetricsJson> {
  // prom-client's JSON names the type as a string ('counter'), whatever its typings say.
  const cumulative = last.filter((metric) => CUMULATIVE.has(String(metric.type)));
  return AggregatorRegistry.aggregate([retired, cumulative]).getMetricsAsJSON();
}

/**
 * The combined registry; `extra` holds series of the primary's own (workers
 * alive, restarts); `retired`, what exited workers counted (see retire()).
 */
export async function aggregateWorkers(reports: readonly WorkerMetricsReport[], extra: MetricsJson = [], retired: MetricsJson = []): Promise<Registry> {
  const ordered = [...reports].sort((a, b) => a.worker - b.worker);
  const derived = new Registry();
  const perWorker = new Gauge({
    name: `${PREFIX}worker_cache_hit_ratio`,
    help: "Each worker's cache_hits_total / cacheable_requests_total (0 before any cacheable request).",
    labelNames: ['worker'] as const,
    registers: [derived],
  });
  const overall = new Gauge({
    name: HIT_RATIO,
    help: 'cache_hits_total / cacheable_requests_total over all workers, since each started (0 before any cacheable request).',
    registers: [derived],
  });
  const copies = PER_WORKER.map(([source, name, help]) => ({ source, gauge: new Gauge({ name, help, labelNames: ['worker'] as const, registers: [derived] }) }));
  let hits = total(retired, HITS);
  let cacheable = total(retired, CACHEABLE);
  const lists = ordered.map((report, index) => {
    const workerHits = total(report.metrics, HITS);
    const workerCacheable = total(report.metrics, CACHEABLE);
    hits += workerHits;
    cacheable += workerCacheable;
    perWorker.labels(String(report.worker)).set(workerCacheable === 0 ? 0 : workerHits / workerCacheable);
    for (const { source, gauge } of copies) {
      const value = report.metrics.find((metric) => metric.name === source)?.values[0]?.value;
      if (value !== undefined) gauge.labels(String(report.worker)).set(value);
    }
    return report.metrics
      .filter((metric) => metric.name !== HIT_RATIO)
      .map((metric) => (index > 0 && SHARED_TIER_GAUGES.has(metric.name) ? { ...metric, values: metric.values.filter((value) => value.labels['tier'] !== SHARED_TIER) } : metric));
  });
  overall.set(cacheable === 0 ? 0 : hits / cacheable);
  return AggregatorRegistry.aggregate([...lists, await derived.getMetricsAsJSON(), extra, retired]);
}

function total(metrics: MetricsJson, name: string): number {
  return metrics.find((metric) => metric.name === name)?.values.reduce((sum, value) => sum + value.value, 0) ?? 0;
}
