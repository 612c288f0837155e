/**
 * Sizes and durations as operators write them in the YAML file, the
 * environment and on the command line.
 *
 * Sizes: a bare number is bytes; units are B, KB, MB, GB, TB (powers of
 * 1000) and KiB, MiB, GiB, TiB (powers of 1024), in any letter case, with
 * optional whitespace before the unit.
 *
 * Durations: a bare number is SECONDS, because that is how Varnish and
 * nginx users think of TTLs (`default_ttl = 120`, `proxy_cache_valid 200 120`).
 * Units are ms, s, m, h, d and are lowercase only: nginx reads `1M` as a
 * month, so accepting it here as a minute would be a silent surprise.
 */

export const SIZE_EXAMPLE = 'a size such as 256MiB';
export const DURATION_EXAMPLE = 'a duration such as 30s';

const SIZE_UNITS: ReadonlyMap<string, number> = new Map([
  ['b', 1],
  ['kb', 1e3],
  ['mb', 1e6],
  ['gb', 1e9],
  ['tb', 1e12],
  ['kib', 2 ** 10],
  ['mib', 2 ** 20],
  ['gib', 2 ** 30],
  ['tib', 2 ** 40],
]);

const DURATION_UNITS: ReadonlyMap<string, number> = new Map([
  ['ms', 1],
  ['s', 1_000],
  ['m', 60_000],
  ['h', 3_600_000],
  ['d', 86_400_000],
]);

// Optional sign so that "-5MiB" is reported as negative rather than as gibberish.
const QUANTITY = /^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*([A-Za-z]*)\s*$/;

/** Bytes from `512`, `"512"`, `"64KiB"`, `"256 MiB"`, `"1.5GB"`. Throws on anything else. */
export function parseSize(input: string | number): number {
  const { value, unit } = split(input, SIZE_EXAMPLE);
  let factor = 1;
  if (unit !== '') {
    const known = SIZE_UNITS.get(unit.toLowerCase());
    if (known === undefined) {
      throw new Error(`unknown size unit "${unit}": expected ${SIZE_EXAMPLE} (units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)`);
    }
    factor = known;
  }
  // A fraction of a byte means the unit was forgotten, not that rounding is wanted.
  if (factor === 1 && !Number.isInteger(value)) throw new Error(`expected a whole number of bytes or ${SIZE_EXAMPLE}`);
  return finish(value * factor, SIZE_EXAMPLE);
}

/** Milliseconds from `30` (seconds), `"500ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`, `"1.5s"`. Throws on anything else. */
export function parseDuration(input: string | number): number {
  const { value, unit } = split(input, DURATION_EXAMPLE);
  let factor = 1_000;
  if (unit !== '') {
    const known = DURATION_UNITS.get(unit);
    if (known === undefined) {
      throw new Error(`unknown duration unit "${unit}": expected ${DURATION_EXAMPLE} (units: ms, s, m, h, d; a bare number is seconds)`);
    }
    factor = known;
  }
  return finish(value * factor, DURATION_EXAMPLE);
}

function split(input: string | number, example: string): { value: number; unit: string } {
  if (typeof input === 'number') {
    check(input, example);
    return { value: input, unit: '' };
  }
  if (typeof input !== 'string') throw new Error(`expected ${example}`);
  const match = QUANTITY.exec(input);
  if (match === null) throw new Error(`expected ${example}`);
  const value = Number(match[1]);
  check(value, example);
  return { value, unit: match[2] ?? '' };
}

function check(value: number, example: string): void {
  if (!Number.isFinite(value)) throw new Error(`expected ${example}`);
  if (value < 0) throw new Error(`must not be negative: expected ${example}`);
}

function finish(exact: number, example: string): number {
  // `|| 0` folds -0 (from "-0") into 0.
  const rounded = Math.round(exact) || 0;
  // Beyond this, arithmetic on the value silently loses precision.
  if (rounded > Number.MAX_SAFE_INTEGER) throw new Error(`too large: expected ${example}`);
  return rounded;
}
