import { fetchText } from './proxy.js';

/**
 * A small reader of the Prometheus text exposition format (version 0.0.4),
 * enough for tests to assert exact values: each sample is keyed by its
 * metric name and its labels in sorted order, e.g.
 * `lacquer_requests_total{outcome="hit",status_class="2xx"}`.
 */
export type Samples = ReadonlyMap<string, number>;

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Samples {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (match === null) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (match[2] ?? '').matchAll(LABEL)) labels[name!] = value!;
    samples.set(seriesKey(match[1]!, labels), Number(match[3]));
  }
  return samples;
}

export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const names = Object.keys(labels).sort();
  if (names.length === 0) return name;
  return `${name}{${names.map((label) => `${label}="${labels[label]}"`).join(',')}}`;
}

export async function scrape(adminUrl: string): Promise<Samples> {
  const response = await fetchText(`${adminUrl}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return parseExposition(response.body);
}

/**
 * Every counter (…_total) and histogram count (…_count) of Lacquer's own
 * metrics that changed between two scrapes, with its change. Process
 * metrics and timing sums are left out: they move on their own.
 */
export function counterChanges(before: Samples, after: Samples): Record<string, number> {
  const changes: Record<string, number> = {};
  for (const [key, value] of after) {
    const name = key.split('{')[0]!;
    if (!name.startsWith('lacquer_') || name.startsWith('lacquer_process_') || name.startsWith('lacquer_nodejs_')) continue;
    if (!name.endsWith('_total') && !name.endsWith('_count')) continue;
    const change = value - (before.get(key) ?? 0);
    if (change !== 0) changes[key] = change;
  }
  return changes;
}
