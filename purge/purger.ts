import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { KeyOptions } from '../config/types.js';
import type { Invalidations } from '../proxy/cache/coalesce.js';
import type { Entry } from '../proxy/cache/entry.js';
import type { Store } from '../proxy/store/store.js';
import { publishPurge, type PurgeEvent, type PurgeSource } from './events.js';
import { exactKey, keyMatcher, kindsOf, parseTarget, type PathTarget, type PurgeSpec } from './selectors.js';
import { softPurged } from './soft.js';
import type { TagIndex } from './tag-index.js';

/**
 * Carries out purges against a store, through its interface only. Each
 * purge first stamps what it names in `invalidations`, so a fetch that
 * started before the purge cannot store its (old) response afterwards; then
 * it finds the stored variants (tag index, or a scan of the keys) and
 * removes them (hard) or marks them stale (soft), a slice at a time so a
 * purge of many entries never holds the event loop for long.
 */

export interface PurgerOptions {
  readonly store: Store;
  readonly index: TagIndex;
  readonly invalidations: Invalidations;
  readonly keyOptions: KeyOptions;
  /** Epoch milliseconds. */
  readonly clock: () => number;
  /** Keys handled between two yields to the event loop. Default 256. */
  readonly sliceSize?: number;
  /** One call per purge (a log line). */
  readonly onPurge?: (event: PurgeEvent) => void;
  readonly onError?: (error: unknown, context: string) => void;
}

export interface PurgeResult {
  readonly purged: number;
  readonly durationMs: number;
}

/** Every variant of the key, or only those named (by a tag). */
const WHOLE_KEY = 'whole-key';
type Selection = typeof WHOLE_KEY | Set<string>;

export class PurgeSpecError extends Error {}

export class Purger {
  readonly #options: PurgerOptions;
  readonly #sliceSize: number;

  constructor(options: PurgerOptions) {
    this.#options = options;
    this.#sliceSize = options.sliceSize ?? 256;
  }

  /** Checks the URLs and prefixes of a spec; answers a message for the first bad one. */
  validate(spec: PurgeSpec, host?: string): string | undefined {
    for (const [field, list] of [['urls', spec.urls], ['prefixes', spec.prefixes]] as const) {
      for (const [i, text] of list.entries()) {
        const target = parseTarget(text, this.#options.keyOptions, host);
        if (typeof target === 'string') return `${field}[${i}]: ${target} (got ${JSON.stringify(text)})`;
      }
    }
    return undefined;
  }

  /** `host` fixes the host of bare paths (the PURGE method passes the request's Host). */
  async purge(spec: PurgeSpec, source: PurgeSource, host?: string): Promise<PurgeResult> {
    const problem = this.validate(spec, host);
    if (problem !== undefined) throw new PurgeSpecError(problem);
    const started = performance.now();
    const startedAt = this.#options.clock();
    const { invalidations, keyOptions } = this.#options;
    const urls = spec.urls.map((text) => parseTarget(text, keyOptions, host) as PathTarget);
    const prefixes = spec.prefixes.map((text) => parseTarget(text, keyOptions, host) as PathTarget);

    // Stamp first: from here on, a response fetched earlier is not stored for anything this purge names.
    if (spec.all) invalidations.invalidateAll();
    for (const tag of spec.tags) invalidations.invalidateTag(tag);
    const matches = keyMatcher(urls, prefixes);
    if (urls.length + prefixes.length > 0) invalidations.invalidateMatching(matches);

    const selection = await this.#select(spec, urls, prefixes, matches);
    const tags = new Set(spec.tags);
    let purged = 0;
    let errors = 0;
    let handled = 0;
    for (const [key, chosen] of selection) {
      try {
        purged += await this.#apply(key, chosen, spec.mode === 'soft', tags, startedAt);
      } catch (error) {
        errors++;
        this.#options.onError?.(error, 'purge');
      }
      if (++handled % this.#sliceSize === 0) await yieldToEventLoop();
    }

    const durationMs = performance.now() - started;
    const event: PurgeEvent = { kinds: kindsOf(spec), mode: spec.mode, source, purged, durationMs, errors };
    publishPurge(event);
    this.#options.onPurge?.(event);
    return { purged, durationMs };
  }

  /** The keys to act on, each with the variants chosen (all of them, or those a tag named). */
  async #select(spec: PurgeSpec, urls: readonly PathTarget[], prefixes: readonly PathTarget[], matches: (key: string) => boolean): Promise<Map<string, Selection>> {
    const selection = new Map<string, Selection>();
    const exact = urls.map((url) => exactKey(url, this.#options.keyOptions));
    const needsScan = spec.all || prefixes.length > 0 || exact.some((key) => key === undefined);
    if (needsScan) {
      const keys = this.#options.store.keys();
      const take = (key: string): void => {
        if (spec.all || matches(key)) selection.set(key, WHOLE_KEY);
      };
      if (Symbol.iterator in keys) {
        // A synchronous store is copied first: other requests change it while the scan yields.
        const all = [...keys];
        for (let i = 0; i < all.length; i++) {
          take(all[i]!);
          if ((i + 1) % (this.#sliceSize * 16) === 0) await yieldToEventLoop();
        }
      } else {
        for await (const key of keys) take(key);
      }
    } else {
      for (const key of exact) selection.set(key!, WHOLE_KEY);
    }
    for (const tag of spec.tags) {
      for (const { key, variant } of this.#options.index.variants(tag)) {
        const chosen = selection.get(key);
        if (chosen === WHOLE_KEY) continue;
        if (chosen === undefined) selection.set(key, new Set([variant]));
        else chosen.add(variant);
      }
    }
    return selection;
  }

  /** Purges the chosen variants of one key; answers how many were affected. */
  async #apply(key: string, chosen: Selection, soft: boolean, tags: ReadonlySet<string>, startedAt: number): Promise<number> {
    const { store, clock } = this.#options;
    if (chosen === WHOLE_KEY && !soft) return store.delete(key);
    const variants = (await store.get(key)) ?? [];
    // Only what was stored before the purge began: a response fetched after it is already the new content.
    const targets = variants.filter((entry) => entry.storedAt <= startedAt && (chosen === WHOLE_KEY || (chosen.has(entry.variant) && entry.tags.some((tag) => tags.has(tag)))));
    if (targets.length === 0) return 0;
    if (soft) {
      const now = clock();
      for (const entry of targets) {
        const marked = softPurged(entry, now);
        if (marked !== entry) await store.set(marked);
      }
      return targets.length;
    }
    if (targets.length === variants.length) return store.delete(key);
    const withVariants = store as Store & { deleteVariant?(entry: Entry): unknown };
    if (withVariants.deleteVariant === undefined) return store.delete(key);
    for (const entry of targets) await withVariants.deleteVariant(entry);
    return targets.length;
  }
}
