import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { aggregateWorkers, retire, type MetricsJson } from '../../metrics/cluster-aggregate.js';
import { restartDelay, workerCount } from '../../proxy/cluster/backoff.js';
import { Gatherer } from '../../proxy/cluster/gather.js';

describe('restarting a worker that died', () => {
  it('restarts at once the first time, then doubles the delay up to the cap', () => {
    const options = { baseMs: 100, maxMs: 1_000, stableMs: 30_000 };
    const delays: number[] = [];
    let failures = 0;
    for (let i = 0; i < 7; i++) {
      const decision = restartDelay(failures, 10, options);
      failures = decision.failures;
      delays.push(decision.delayMs);
    }
    expect(delays).toEqual([0, 100, 200, 400, 800, 1_000, 1_000]);
  });

  it('starts counting again after a worker lived long enough', () => {
    expect(restartDelay(6, 30_000, { stableMs: 30_000 })).toEqual({ delayMs: 0, failures: 1 });
    expect(restartDelay(6, 29_999, { baseMs: 100, maxMs: 60_000, stableMs: 30_000 })).toEqual({ delayMs: 3_200, failures: 7 });
  });

  it('reads auto as one worker per core', () => {
    expect(workerCount('auto', 8)).toBe(8);
    expect(workerCount('auto', 0)).toBe(1);
    expect(workerCount(3, 8)).toBe(3);
  });
});

describe('gathering answers from workers', () => {
  it('settles when every worker asked has answered', async () => {
    const gatherer = new Gatherer<string>();
    const asked: number[] = [];
    const result = gatherer.ask([1, 2], 60_000, (worker, id) => {
      asked.push(worker);
      queueMicrotask(() => gatherer.answer(id, worker, `from ${worker}`));
      return true;
    });
    const { answers, missing } = await result;
    expect(asked).toEqual([1, 2]);
    expect(Object.fromEntries(answers)).toEqual({ 1: 'from 1', 2: 'from 2' });
    expect(missing).toEqual([]);
  });

  it('stops waiting for a worker that died', async () => {
    const gatherer = new Gatherer<string>();
    const result = gatherer.ask([1, 2], 60_000, (worker, id) => {
      if (worker === 1) queueMicrotask(() => gatherer.answer(id, worker, 'one'));
      return true;
    });
    setImmediate(() => gatherer.gone(2));
    expect((await result).missing).toEqual([2]);
  });

  it('stops waiting for a stuck worker after the timeout, and for one it could not reach at once', async () => {
    const gatherer = new Gatherer<string>();
    const { answers, missing } = await gatherer.ask([1, 2, 3], 50, (worker) => worker !== 3);
    expect(answers.size).toBe(0);
    expect(missing).toEqual([1, 2, 3]);
  });
});

/** One worker's registry, shaped like Lacquer's (hits, cacheable requests, store gauges by tier). */
async function workerMetrics(hits: number, cacheable: number, memoryEntries: number, diskEntries: number): Promise<MetricsJson> {
  const registry = new Registry();
  new Counter({ name: 'lacquer_cache_hits_total', help: 'h', registers: [registry] }).inc(hits);
  new Counter({ name: 'lacquer_cacheable_requests_total', help: 'c', registers: [registry] }).inc(cacheable);
  new Gauge({ name: 'lacquer_cache_hit_ratio', help: 'r', registers: [registry] }).set(cacheable === 0 ? 0 : hits / cacheable);
  const entries = new Gauge({ name: 'lacquer_store_entries', help: 'e', labelNames: ['tier'], registers: [registry] });
  entries.labels('memory').set(memoryEntries);
  entries.labels('disk').set(diskEntries);
  return registry.getMetricsAsJSON();
}

function valueOf(text: string, series: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metrics over several workers', () => {
  it('sums counters, recomputes the hit ratio, keeps each worker its own, and counts the shared disk tier once', async () => {
    const text = await (
      await aggregateWorkers([
        { worker: 2, metrics: await workerMetrics(1, 4, 3, 7) },
        { worker: 1, metrics: await workerMetrics(9, 12, 5, 7) },
      ])
    ).metrics();
    expect(valueOf(text, 'lacquer_cache_hits_total')).toBe(10);
    expect(valueOf(text, 'lacquer_cacheable_requests_total')).toBe(16);
    expect(valueOf(text, 'lacquer_cache_hit_ratio')).toBe(10 / 16);
    expect(valueOf(text, 'lacquer_worker_cache_hit_ratio{worker="1"}')).toBe(0.75);
    expect(valueOf(text, 'lacquer_worker_cache_hit_ratio{worker="2"}')).toBe(0.25);
    expect(valueOf(text, 'lacquer_store_entries{tier="memory"}')).toBe(8);
    expect(valueOf(text, 'lacquer_store_entries{tier="disk"}')).toBe(7);
  });

  it("keeps each worker's event-loop lag and memory apart, since an average would hide one sick worker", async () => {
    const lagged = async (lag: number, memory: number) => {
      const registry = new Registry();
      new Gauge({ name: 'lacquer_nodejs_eventloop_lag_p99_seconds', help: 'l', registers: [registry], aggregator: 'average' }).set(lag);
      new Gauge({ name: 'lacquer_process_resident_memory_bytes', help: 'm', registers: [registry] }).set(memory);
      return [...(await workerMetrics(0, 0, 0, 0)), ...(await registry.getMetricsAsJSON())];
    };
    const text = await (
      await aggregateWorkers([
        { worker: 1, metrics: await lagged(0.01, 100) },
        { worker: 2, metrics: await lagged(2.5, 300) },
      ])
    ).metrics();
    expect(valueOf(text, 'lacquer_worker_eventloop_lag_p99_seconds{worker="1"}')).toBe(0.01);
    expect(valueOf(text, 'lacquer_worker_eventloop_lag_p99_seconds{worker="2"}')).toBe(2.5);
    expect(valueOf(text, 'lacquer_worker_resident_memory_bytes{worker="2"}')).toBe(300);
    expect(valueOf(text, 'lacquer_process_resident_memory_bytes')).toBe(400);
  });

  it("adds the primary's own series", async () => {
    const primary = new Registry();
    new Gauge({ name: 'lacquer_workers_alive', help: 'a', registers: [primary] }).set(2);
    const text = await (await aggregateWorkers([{ worker: 1, metrics: await workerMetrics(0, 0, 0, 0) }], await primary.getMetricsAsJSON())).metrics();
    expect(valueOf(text, 'lacquer_workers_alive')).toBe(2);
    expect(valueOf(text, 'lacquer_cache_hit_ratio')).toBe(0);
  });

  it('keeps what exited workers counted in the totals, so no counter goes down when a worker is replaced', async () => {
    let retired = await retire([], await workerMetrics(6, 8, 4, 7));
    retired = await retire(retired, await workerMetrics(1, 2, 9, 7));
    // Gauges of a worker that is gone say nothing any more; its counters still count.
    expect(retired.map((metric) => metric.name).sort()).toEqual(['lacquer_cache_hits_total', 'lacquer_cacheable_requests_total']);
    const text = await (await aggregateWorkers([{ worker: 1, metrics: await workerMetrics(3, 6, 5, 7) }], [], retired)).metrics();
    expect(valueOf(text, 'lacquer_cache_hits_total')).toBe(10);
    expect(valueOf(text, 'lacquer_cacheable_requests_total')).toBe(16);
    expect(valueOf(text, 'lacquer_cache_hit_ratio')).toBe(10 / 16);
    expect(valueOf(text, 'lacquer_store_entries{tier="memory"}')).toBe(5);
  });
});
