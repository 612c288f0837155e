/**
 * Redis Stream entry ids ("<ms>-<seq>", both unsigned 64-bit), compared as
 * numbers: the string order is wrong ("9-0" > "10-0"), and the parts may
 * exceed 2^53.
 */

export const ZERO_ID = '0-0';

export function parseStreamId(id: string): readonly [bigint, bigint] | undefined {
  const match = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  return match === null ? undefined : [BigInt(match[1]!), BigInt(match[2]!)];
}

export function isStreamId(id: string): boolean {
  return parseStreamId(id) !== undefined;
}

/** Negative, zero or positive as `a` is before, equal to or after `b`. */
export function compareStreamIds(a: string, b: string): number {
  const left = parseStreamId(a);
  const right = parseStreamId(b);
  if (left === undefined || right === undefined) throw new Error(`not a stream id: ${left === undefined ? a : b}`);
  if (left[0] !== right[0]) return left[0] < right[0] ? -1 : 1;
  return left[1] === right[1] ? 0 : left[1] < right[1] ? -1 : 1;
}
