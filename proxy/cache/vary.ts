import { headerValue, splitList, type HeaderMap } from '../http/headers.js';

/**
 * Variant selection (RFC 9111 §4.1): a stored response is used only when the
 * request's values for the fields named in its Vary match the values of the
 * request that produced it. Values are normalized first so trivial
 * differences (spacing, case, q-value noise in Accept-Encoding) do not
 * multiply variants.
 */

/** The normalized value of one request field, as it takes part in a variant. */
export function normalizedFieldValue(headers: HeaderMap, name: string): string {
  const value = headerValue(headers, name);
  if (name === 'accept-encoding') return encodingBucket(value);
  if (value === undefined) return '';
  if (name === 'accept-language') return languagePreferences(value);
  return splitList(value).join(',').toLowerCase();
}

/**
 * Accept-Language reduced to what it asks for (RFC 9110 §12.5.4): each
 * language range with its weight, ranked by weight. Ranges of equal weight
 * are equally preferred, so their order carries no meaning and they are
 * sorted by name; `en, de` and `de, en` select the same variant.
 */
function languagePreferences(value: string): string {
  const ranges = splitList(value).map((member) => {
    const [range = '', ...params] = member.split(';').map((part) => part.trim().toLowerCase());
    const q = params.find((param) => param.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    // A weight we cannot read is kept verbatim, so it never merges with a readable one.
    if (!Number.isFinite(weight)) return { range: member.replace(/\s+/g, '').toLowerCase(), weight: 1 };
    return { range, weight };
  });
  ranges.sort((a, b) => b.weight - a.weight || (a.range < b.range ? -1 : a.range > b.range ? 1 : 0));
  return ranges.map(({ range, weight }) => (weight === 1 ? range : `${range};q=${weight}`)).join(',');
}

/** The variant a request selects for a response that varies on `vary`. */
export function variantOf(headers: HeaderMap, vary: readonly string[]): string {
  if (vary.length === 0) return '';
  let variant = '';
  for (const name of vary) variant += `${name}=${normalizedFieldValue(headers, name)}\n`;
  return variant;
}

/**
 * Accept-Encoding reduced to the codings a cache should care about. The
 * request sent upstream carries the bucket, not the client's own list, so
 * every client in a bucket can be given the same stored response.
 */
export type EncodingBucket = 'br, gzip' | 'br' | 'gzip' | 'identity';

export function encodingBucket(acceptEncoding: string | undefined): EncodingBucket {
  if (acceptEncoding === undefined) return 'identity';
  let br = false;
  let gzip = false;
  for (const member of splitList(acceptEncoding)) {
    const [coding = '', ...params] = member.split(';').map((part) => part.trim().toLowerCase());
    const q = params.find((param) => param.startsWith('q='));
    if (q !== undefined && Number(q.slice(2)) === 0) continue;
    if (coding === 'br') br = true;
    else if (coding === 'gzip' || coding === 'x-gzip') gzip = true;
    else if (coding === '*') br = gzip = true;
  }
  if (br && gzip) return 'br, gzip';
  if (br) return 'br';
  if (gzip) return 'gzip';
  return 'identity';
}
