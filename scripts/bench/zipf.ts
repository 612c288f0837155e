/**
 * Seeded randomness and a Zipf sampler, so every run of the benchmark asks
 * for the same sequence of keys and two runs are comparable.
 */

/** mulberry32: a small, fast 32-bit generator; returns numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Draws ranks 1..n with P(k) proportional to 1/k^s (s = 1 is the classic
 * web-cache popularity curve). The cumulative table is built once; each
 * draw is a binary search.
 */
export function zipfSampler(n: number, s: number, random: () => number): () => number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`zipf: n must be a positive integer, got ${n}`);
  if (!(s > 0)) throw new RangeError(`zipf: s must be positive, got ${s}`);
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let k = 1; k <= n; k++) {
    total += 1 / k ** s;
    cumulative[k - 1] = total;
  }
  return () => {
    const target = random() * total;
    let low = 0;
    let high = n - 1;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (cumulative[mid]! < target) low = mid + 1;
      else high = mid;
    }
    return low + 1;
  };
}

/** A fixed request sequence of `count` ranks, and the distinct ranks in it (what a warm-up must fill). */
export function zipfSequence(n: number, count: number, seed: number, s = 1): { ranks: number[]; distinct: number[] } {
  const draw = zipfSampler(n, s, seededRandom(seed));
  const ranks: number[] = [];
  const seen = new Set<number>();
  for (let i = 0; i < count; i++) {
    const rank = draw();
    ranks.push(rank);
    seen.add(rank);
  }
  return { ranks, distinct: [...seen].sort((a, b) => a - b) };
}
