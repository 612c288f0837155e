import { splitList, unquote } from '../http/headers.js';
import { parseDictionary, type BareItem } from '../http/structured-dictionary.js';

/**
 * A parsed Cache-Control field (RFC 9111 §5.2). Directive names are
 * lower-cased; a directive without an argument maps to `true`.
 *
 * Our own parser rather than http-cache-semantics' split on commas, which
 * breaks quoted lists such as `no-cache="set-cookie, x-foo"`.
 */
export type Directives = ReadonlyMap<string, string | true>;

/** No directives: what an ignored or absent field parses to. */
export const EMPTY_DIRECTIVES: Directives = new Map();

export function parseCacheControl(value: string | undefined): Directives {
  if (value === undefined || value === '') return EMPTY_DIRECTIVES;
  const directives = new Map<string, string | true>();
  const conflicting = new Set<string>();
  for (const member of splitList(value)) {
    const eq = member.indexOf('=');
    const name = (eq === -1 ? member : member.slice(0, eq)).trim().toLowerCase();
    if (name === '') continue;
    const argument = eq === -1 ? true : unquote(member.slice(eq + 1).trim());
    const previous = directives.get(name);
    if (previous !== undefined && previous !== argument) conflicting.add(name);
    directives.set(name, argument);
  }
  // RFC 9111 §4.2.1: conflicting duplicates of a freshness directive make the
  // freshness information invalid; record that as an invalid argument.
  for (const name of conflicting) directives.set(name, 'conflicting');
  return directives;
}

/**
 * A delta-seconds argument (RFC 9111 §1.2.2): digits only. Returns
 * `undefined` when the directive is absent and `null` when it is present but
 * invalid, which callers treat as "already stale" (RFC 9111 §4.2.1).
 */
export function deltaSeconds(directives: Directives, name: string): number | null | undefined {
  const argument = directives.get(name);
  if (argument === undefined) return undefined;
  if (argument === true || !/^\d+$/.test(argument)) return null;
  // Values too large to represent are capped to 2^31 seconds (RFC 9111 §1.2.2).
  return Math.min(Number(argument), 2 ** 31);
}

/** The field names a qualified `no-cache="a, b"` or `private="a"` lists, lower-cased. */
export function qualifiedFields(directives: Directives, name: string): string[] | undefined {
  const argument = directives.get(name);
  if (typeof argument !== 'string') return undefined;
  return splitList(argument).map((field) => field.toLowerCase());
}

/**
 * Surrogate-Control (W3C Edge Architecture 1.0): Cache-Control-like
 * directives for surrogates, each optionally targeted with `;name`. Only
 * untargeted members and those targeted at `target` apply. Parsing is
 * strict (no spaces around `=`), because a member that is not understood
 * must be ignored rather than guessed at.
 */
export function parseSurrogateControl(value: string | undefined, target: string): Directives {
  if (value === undefined || value === '') return EMPTY_DIRECTIVES;
  const directives = new Map<string, string | true>();
  for (const member of splitList(value)) {
    const match = /^([A-Za-z][A-Za-z0-9-]*)(?:=("(?:[^"\\]|\\.)*"|[^;\s"]+))?(?:;([^;\s]+))?$/.exec(member);
    if (match === null) continue;
    if (match[3] !== undefined && match[3].toLowerCase() !== target.toLowerCase()) continue;
    directives.set(match[1]!.toLowerCase(), match[2] === undefined ? true : unquote(match[2]));
  }
  return directives;
}

/** Directives whose argument is delta-seconds: in a targeted field it must be a non-negative Integer. */
const DELTA_SECONDS_DIRECTIVES = new Set(['max-age', 's-maxage', 'stale-while-revalidate', 'stale-if-error']);

/**
 * A targeted cache-control field such as CDN-Cache-Control (RFC 9213 §2.1):
 * a Dictionary Structured Field. A field that is not a valid Dictionary is
 * ignored as a whole (`undefined`); a directive whose value has the wrong
 * type (`max-age="60"`, `max-age=1.5`) is ignored on its own, and a
 * directive set to false (`no-store=?0`) is absent.
 */
export function parseTargetedCacheControl(value: string | undefined): Directives | undefined {
  if (value === undefined) return undefined;
  const dictionary = parseDictionary(value);
  if (dictionary === undefined) return undefined;
  const directives = new Map<string, string | true>();
  for (const [name, member] of dictionary) {
    if (DELTA_SECONDS_DIRECTIVES.has(name)) {
      if (member.type === 'integer' && member.value >= 0) directives.set(name, String(member.value));
      continue;
    }
    if (member.type === 'boolean') {
      if (member.value) directives.set(name, true);
    } else if (member.type === 'inner-list') {
      // A list of field names, as in private=("set-cookie" "x-user").
      directives.set(name, member.value.map(itemText).join(', '));
    } else {
      directives.set(name, itemText(member));
    }
  }
  return directives;
}

function itemText(item: BareItem): string {
  return String(item.value);
}
