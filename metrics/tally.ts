import { Counter, type CounterConfiguration } from 'prom-client';

/**
 * A counter series counted on the hot path as a plain number and folded
 * into its prom-client counter when scraped. prom-client hashes and checks
 * the labels on every increment (about 0.2 µs); a hit should pay a field
 * increment instead.
 */
export class Tally {
  /** Not yet reported to the counter. */
  pending = 0;

  constructor(readonly series: { inc(value: number): void }) {}

  add(value = 1): void {
    this.pending += value;
  }
}

export interface TalliedCounter<T extends string> {
  readonly counter: Counter<T>;
  /** The tally for one series (label values in `labelNames` order); the same object for the same values. */
  tally(...values: string[]): Tally;
}

export function talliedCounter<T extends string>(configuration: Omit<CounterConfiguration<T>, 'collect'>): TalliedCounter<T> {
  const tallies = new Map<string, Tally>();
  const counter: Counter<T> = new Counter<T>({
    ...configuration,
    collect() {
      for (const tally of tallies.values()) {
        if (tally.pending === 0) continue;
        tally.series.inc(tally.pending);
        tally.pending = 0;
      }
    },
  });
  return {
    counter,
    tally(...values) {
      const name = values.join('\u0000');
      let tally = tallies.get(name);
      if (tally === undefined) {
        tally = new Tally(values.length === 0 ? { inc: (value) => counter.inc(value) } : counter.labels(...values));
        tallies.set(name, tally);
      }
      return tally;
    },
  };
}
