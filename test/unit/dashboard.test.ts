import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Metric } from 'prom-client';
import { createMetrics } from '../../metrics/registry.js';

/**
 * The committed Grafana dashboard must parse and must only query metrics
 * (and group by labels) that Lacquer's registry actually exposes, so a
 * renamed metric cannot leave a silently empty panel behind.
 */

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: { expr: string; refId: string }[];
}

const dashboard = JSON.parse(readFileSync(new URL('../../metrics/grafana-dashboard.json', import.meta.url), 'utf8')) as { panels: Panel[]; templating: { list: { name: string; type: string }[] } };
const exprs = dashboard.panels.flatMap((panel) => panel.targets ?? []).map((target) => target.expr);

async function exposed(): Promise<Map<string, { type: string; labels: Set<string> }>> {
  const metrics = createMetrics({ tiers: () => [{ tier: 'memory', stats: { entries: 0, bytes: 0, maxBytes: 1 } }] });
  const names = new Map<string, { type: string; labels: Set<string> }>();
  for (const metric of metrics.registry.getMetricsAsArray() as unknown as Metric[]) {
    const exported = await metric.get();
    // Declared label names, whether or not a series exists yet, plus any a collector sets.
    const labels = new Set([...((metric as unknown as { labelNames?: string[] }).labelNames ?? []), ...exported.values.flatMap((value) => Object.keys(value.labels))]);
    names.set(exported.name, { type: String(exported.type), labels });
  }
  return names;
}

/** The metric a series name belongs to: histogram series carry _bucket, _sum and _count. */
function metricOf(series: string, names: Map<string, unknown>): string {
  if (names.has(series)) return series;
  const base = series.replace(/_(bucket|sum|count)$/, '');
  return names.has(base) ? base : series;
}

describe('the Grafana dashboard', () => {
  it('parses, and every panel queries through the datasource variable', () => {
    expect(dashboard.templating.list.some((variable) => variable.name === 'datasource' && variable.type === 'datasource')).toBe(true);
    const queried = dashboard.panels.filter((panel) => panel.type !== 'row');
    expect(queried.length).toBeGreaterThanOrEqual(10);
    for (const panel of queried) {
      expect(panel.datasource?.uid, panel.title).toBe('${datasource}');
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
    }
    expect(new Set(dashboard.panels.map((panel) => panel.id)).size).toBe(dashboard.panels.length);
  });

  it('references only metrics the registry exposes, with histogram suffixes only on histograms', async () => {
    const names = await exposed();
    const referenced = new Set(exprs.flatMap((expr) => expr.match(/\blacquer_[a-z0-9_]+/g) ?? []));
    expect(referenced.size).toBeGreaterThan(10);
    for (const series of referenced) {
      const metric = metricOf(series, names);
      expect(names.has(metric), `${series} is not exposed`).toBe(true);
      if (series !== metric) expect(names.get(metric)!.type, series).toBe('histogram');
    }
  });

  it('groups and filters only by labels the queried metrics carry', async () => {
    const names = await exposed();
    for (const expr of exprs) {
      const labels = new Set(['le', 'instance', 'job']);
      for (const series of expr.match(/\blacquer_[a-z0-9_]+/g) ?? []) for (const label of names.get(metricOf(series, names))?.labels ?? []) labels.add(label);
      const used = [...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((match) => match[1]!.split(',').map((label) => label.trim()));
      used.push(...[...expr.matchAll(/\{([a-z_]+)=~?"/g)].map((match) => match[1]!));
      for (const label of used) expect(labels.has(label), `${label} in ${expr}`).toBe(true);
    }
  });

  it('covers what an operator asks first: hit ratio, outcomes, origin latency, store fill, purges, stale because the origin failed', () => {
    const all = exprs.join('\n');
    for (const metric of [
      'lacquer_cache_hits_total',
      'lacquer_requests_total',
      'lacquer_origin_request_duration_seconds_bucket',
      'lacquer_store_bytes',
      'lacquer_purges_total',
      'lacquer_stale_on_origin_error_total',
    ]) {
      expect(all).toContain(metric);
    }
  });
});
