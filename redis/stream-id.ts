/**
 * Redis Stream entry ids: "<ms>-<seq>", both unsigned 64-bit. Only checked
 * here (a saved position must be one); Redis does every comparison.
 */

export const ZERO_ID = '0-0';

export function isStreamId(id: string): boolean {
  const match = /^(\d{1,20})-(\d{1,20})$/.exec(id);
  return match !== null && BigInt(match[1]!) < 2n ** 64n && BigInt(match[2]!) < 2n ** 64n;
}
