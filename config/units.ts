/**
 * Sizes and durations as operators write them. A bare number is bytes for
 * a size and seconds for a duration (how Varnish and nginx users think of
 * TTLs); strings carry a unit.
 */

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/** Bytes from `512`, `64KiB`, `256MiB`, `1.5GB`, … */
export function parseSize(input: string | number): number {
  return parseQuantity(input, SIZE_UNITS, 1, 'a size such as 256MiB, 10GB or a number of bytes');
}

/** Milliseconds from `500ms`, `30s`, `5m`, `2h`, `1d`, or a bare number of seconds. */
export function parseDuration(input: string | number): number {
  return parseQuantity(input, DURATION_UNITS, 1000, 'a duration such as 30s, 5m, 500ms or a number of seconds');
}

function parseQuantity(input: string | number, units: Record<string, number>, bareUnit: number, expected: string): number {
  let value: number;
  let unit = bareUnit;
  if (typeof input === 'number') {
    value = input;
  } else {
    const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(input);
    if (match === null) throw new Error(`expected ${expected}`);
    value = Number(match[1]);
    if (match[2] !== '') {
      const factor = units[match[2]!.toLowerCase()];
      if (factor === undefined) throw new Error(`unknown unit "${match[2]}"; expected ${expected}`);
      unit = factor;
    }
  }
  if (!Number.isFinite(value)) throw new Error(`expected ${expected}`);
  if (value < 0) throw new Error(`must not be negative; expected ${expected}`);
  return Math.round(value * unit);
}
