import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { KeyOptions } from '../config/types.js';
import type { Invalidations } from '../proxy/cache/coalesce.js';
import type { Entry } from '../proxy/cache/entry.js';
import type { Store } from '../proxy/store/store.js';
import { publishPurge, type PurgeEvent, type PurgeSource } from './events.js';
import { exactKey, keyMatcher, parseTarget, splitByKind, type PathTarget, type PurgeKind, type PurgeSpec } from './selectors.js';
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

/**
 * A purge as it crosses to other copies of the cache (other workers, other
 * instances): plain JSON, with the Host that bare paths were given against.
 */
export interface RelayedPurge {
  readonly spec: PurgeSpec;
  readonly host?: string;
}

/**
 * Carries purges made here to the other copies of the cache. `send`
 * resolves once the others have applied the purge, or once the relay stops
 * waiting for them (a relay that cannot deliver keeps the purge to send
 * later, bounded, and says so in its own metrics and logs; it never
 * rejects). Purges that arrive from the others are applied with
 * `Purger.applyRelayed`, which does not relay them again.
 */
export interface PurgeRelay {
  send(purge: RelayedPurge): Promise<void>;
}

export class PurgeSpecError extends Error {}

export class Purger {
  readonly #options: PurgerOptions;
  readonly #sliceSize: number;
  readonly #relays: PurgeRelay[] = [];

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

  /** Purges made here are sent on through `relay` too (workers of this machine, other instances). */
  addRelay(relay: PurgeRelay): void {
    this.#relays.push(relay);
  }

  /**
   * Carries out a purge request: one purge (and one event) per kind it
   * names, here and then through every relay, answering once all of them
   * have. `host` fixes the host of bare paths (the PURGE method passes the
   * request's Host). `purged` counts this process's entries only.
   */
  async purge(spec: PurgeSpec, source: PurgeSource, host?: string): Promise<PurgeResult> {
    const started = performance.now();
    const purged = await this.#purgeHere(spec, source, host);
    if (this.#relays.length > 0) {
      const relayed: RelayedPurge = host === undefined ? { spec } : { spec, host };
      await Promise.all(this.#relays.map((relay) => relay.send(relayed)));
    }
    return { purged, durationMs: performance.now() - started };
  }

  /** Applies a purge made by another copy of the cache; it is not relayed again. */
  async applyRelayed(purge: RelayedPurge): Promise<PurgeResult> {
    const started = performance.now();
    const purged = await this.#purgeHere(purge.spec, 'relay', purge.host);
    return { purged, durationMs: performance.now() - started };
  }

  async #purgeHere(spec: PurgeSpec, source: PurgeSource, host: string | undefined): Promise<number> {
    const problem = this.validate(spec, host);
    if (problem !== undefined) throw new PurgeSpecError(problem);
    let purged = 0;
    for (const part of splitByKind(spec)) purged += await this.#purgeKind(part.kind, part.spec, source, host);
    return purged;
  }

  async #purgeKind(kind: PurgeKind, spec: PurgeSpec, source: PurgeSource, host: string | undefined): Promise<number> {
    const started = performance.now();
    const startedAt = this.#options.clock();
    const { invalidations, keyOptions } = this.#options;
    const urls = spec.urls.map((text) => parseTarget(text, keyOptions, host) as PathTarget);
    const prefixes = spec.prefixes.map((text) => parseTarget(text, keyOptions, host) as PathTarget);

    // Stamp first: from here on, a response fetched earlier is not stored for anything this purge names.
    if (spec.all) invalidations.invalidateAll();
    for (const tag of spec.tags) invalidations.invalidateTag(tag);
    const matches = keyMatcher(urls, prefixes);
    // A URL that names one key is stamped by key; only the others (and prefixes) need the short list of matchers.
    const inexact = urls.filter((url) => {
      const key = exactKey(url, keyOptions);
      if (key !== undefined) invalidations.invalidate(key);
      return key === undefined;
    });
    if (inexact.length + prefixes.length > 0) invalidations.invalidateMatching(keyMatcher(inexact, prefixes));

    // A store still reading its index at boot cannot yet name everything this purge covers, and would add it afterwards.
    const booting = (this.#options.store as Store & { readonly ready?: Promise<void> }).ready;
    if (booting !== undefined) await booting.catch(() => undefined);

    const soft = spec.mode === 'soft';
    const tags = new Set(spec.tags);
    const tally = { purged: 0, errors: 0, handled: 0 };
    const step = async (action: () => Promise<number>): Promise<void> => {
      try {
        tally.purged += await action();
      } catch (error) {
        tally.errors++;
        this.#options.onError?.(error, 'purge');
      }
      if (++tally.handled % this.#sliceSize === 0) await yieldToEventLoop();
    };

    // URLs, prefixes and everything purge whole keys; tags purge the variants that carry them (once each).
    for (const key of await this.#wholeKeys(spec, urls, prefixes, matches)) await step(() => this.#apply(key, undefined, soft, tags, startedAt));
    const seen = new Set<string>();
    for (const tag of spec.tags) {
      for (const id of this.#options.index.ids(tag)) {
        if (seen.has(id)) continue;
        seen.add(id);
        const ref = this.#options.index.ref(id);
        if (ref !== undefined) await step(() => this.#apply(ref.key, ref.variant, soft, tags, startedAt));
      }
    }
    const { purged, errors } = tally;

    const event: PurgeEvent = { kind, soft, purged, durationMs: performance.now() - started, source, errors };
    publishPurge(event);
    this.#options.onPurge?.(event);
    return purged;
  }

  /** The keys purged whole (every variant): those the URLs, prefixes or `all` name. */
  async #wholeKeys(spec: PurgeSpec, urls: readonly PathTarget[], prefixes: readonly PathTarget[], matches: (key: string) => boolean): Promise<string[]> {
    const exact = urls.map((url) => exactKey(url, this.#options.keyOptions));
    const needsScan = spec.all || prefixes.length > 0 || exact.some((key) => key === undefined);
    if (!needsScan) return [...new Set(exact as string[])];
    const chosen: string[] = [];
    const keys = this.#options.store.keys();
    if (Symbol.iterator in keys) {
      // A synchronous store is copied first: other requests change it while the scan yields.
      const all = [...keys];
      for (let i = 0; i < all.length; i++) {
        if (spec.all || matches(all[i]!)) chosen.push(all[i]!);
        if ((i + 1) % (this.#sliceSize * 16) === 0) await yieldToEventLoop();
      }
    } else {
      for await (const key of keys) if (spec.all || matches(key)) chosen.push(key);
    }
    return chosen;
  }

  /** Purges one key: every variant, or only `variant` (named by one of `tags`); answers how many were affected. */
  async #apply(key: string, variant: string | undefined, soft: boolean, tags: ReadonlySet<string>, startedAt: number): Promise<number> {
    const { store, clock } = this.#options;
    if (variant === undefined && !soft) return store.delete(key);
    const variants = (await store.get(key)) ?? [];
    // Only what was stored before the purge began: a response fetched after it is already the new content.
    const targets = variants.filter((entry) => entry.storedAt <= startedAt && (variant === undefined || (entry.variant === variant && entry.tags.some((tag) => tags.has(tag)))));
    if (targets.length === 0) return 0;
    if (soft) {
      const now = clock();
      let marked = 0;
      for (const entry of targets) {
        const stale = softPurged(entry, now);
        if (stale === entry) continue;
        await store.set(stale);
        marked++;
      }
      return marked;
    }
    if (targets.length === variants.length) return store.delete(key);
    const withVariants = store as Store & { deleteVariant?(entry: Entry): unknown };
    if (withVariants.deleteVariant === undefined) return store.delete(key);
    for (const entry of targets) await withVariants.deleteVariant(entry);
    return targets.length;
  }
}
