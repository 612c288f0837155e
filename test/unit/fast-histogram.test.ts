import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastHistogram } from '../../metrics/fast-histogram.js';
import { parseExposition } from '../helpers/prometheus.js';

describe('FastHistogram', () => {
  it('exposes exactly what a prom-client Histogram exposes for the same observations', async () => {
    const buckets = [0.001, 0.01, 0.1, 1];
    const observations: [('a' | 'b'), number][] = [['a', 0.0005], ['a', 0.001], ['a', 0.05], ['a', 3], ['b', 0.2], ['b', 0.2]];

    const expectedRegistry = new Registry();
    const reference = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['kind'], buckets, registers: [expectedRegistry] });
    const actualRegistry = new Registry();
    const fast = new FastHistogram<'a' | 'b'>({ name: 'h_seconds', help: 'h', label: 'kind', values: ['a', 'b'], buckets, registers: [actualRegistry] });
    for (const [kind, value] of observations) {
      reference.labels(kind).observe(value);
      fast.series(kind)(value);
    }
    const expected = parseExposition(await expectedRegistry.metrics());
    const actual = parseExposition(await actualRegistry.metrics());
    expect(actual).toEqual(expected);
    expect(actual.get('h_seconds_bucket{kind="a",le="0.001"}')).toBe(2);
    expect(actual.get('h_seconds_bucket{kind="a",le="+Inf"}')).toBe(4);
    expect(actual.get('h_seconds_count{kind="b"}')).toBe(2);
    expect((await actualRegistry.metrics())).toContain('# TYPE h_seconds histogram');
  });

  it('refuses a label value outside its closed set', () => {
    const fast = new FastHistogram<'a'>({ name: 'x_seconds', help: 'x', label: 'kind', values: ['a'], buckets: [1], registers: [] });
    expect(() => fast.series('b' as 'a')).toThrow(/not one of its kind values/);
  });
});
