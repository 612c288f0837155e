import type { StoredHeaders } from '../http/headers.js';

/**
 * Store-time compaction of the strings an entry keeps for its whole life.
 * Entries live for hours and there may be millions of them, so each byte
 * here is paid per entry; the work is done once, when an entry is made.
 */

/**
 * A copy of `text` as one flat string. Strings built by concatenation (a
 * key is host + path, a file path is dir + id + suffix) are kept by V8 as
 * trees of their pieces, each piece and node an object of its own; a flat
 * copy lets the tree go. A JSON round trip builds a flat string and keeps
 * every code unit, lone surrogates included (join and slice hand back the
 * tree itself).
 */
export function flat(text: string): string {
  return JSON.parse(JSON.stringify(text)) as string;
}

/** Header values shared between entries, so a million entries do not hold a million copies of "public, max-age=3600". */
const MAX_INTERNED = 4096;
const MAX_INTERNED_LENGTH = 128;
let interned = new Map<string, string>();

/**
 * The one shared copy of a short header value. The table is bounded: when
 * it fills up (values that differ per response, such as ETags, would fill
 * it), it starts again empty, so it never holds more than MAX_INTERNED.
 */
export function sharedValue(value: string): string {
  if (value.length > MAX_INTERNED_LENGTH) return value;
  const known = interned.get(value);
  if (known !== undefined) return known;
  if (interned.size >= MAX_INTERNED) interned = new Map();
  const own = flat(value);
  interned.set(own, own);
  return own;
}

/**
 * The stored headers with every short value shared (see sharedValue); the
 * names are already shared by Node's parser. The object is built by
 * JSON.parse, which V8 sizes for all of its fields at once: one built by
 * adding fields to `{}` keeps those past the fourth in a second array,
 * tens of bytes more per entry. JSON keeps every name (`__proto__` too, as
 * a plain field), their order, and every code unit of the values.
 */
export function compactHeaders(headers: StoredHeaders): StoredHeaders {
  const compact = JSON.parse(JSON.stringify(headers)) as StoredHeaders;
  for (const name in compact) {
    const value = compact[name]!;
    // Replacing a field's value keeps the object's layout.
    compact[name] = typeof value === 'string' ? sharedValue(value) : value.map(sharedValue);
  }
  return compact;
}
