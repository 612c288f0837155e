import type { Entry } from '../proxy/cache/entry.js';
import type { RemovalReason, StoreListener } from '../proxy/store/store.js';

/** One stored variant, as purge names it: its key and its variant value. */
export interface VariantRef {
  readonly key: string;
  readonly variant: string;
}

interface Indexed extends VariantRef {
  readonly tags: readonly string[];
  /**
   * Which stored response this record describes (its storedAt), so a late
   * removal of a replaced variant cannot unlink its successor. Not the entry
   * itself: that may be the memory tier's object, and holding it here would
   * keep its body alive after the memory tier let it go.
   */
  readonly storedAt: number;
}

/**
 * tag → stored variants, kept in step with a store through its listener:
 * every onStore adds (or replaces) a variant's record, every onRemove
 * (eviction, expiry, replacement, deletion) takes it out, so the index holds
 * exactly the tagged variants the store holds and cannot outgrow it. A tier
 * that reloads entries at boot (disk) rebuilds the index by announcing them
 * with onStore. Untagged entries cost nothing here.
 */
export class TagIndex implements StoreListener {
  readonly #byTag = new Map<string, Set<string>>();
  readonly #byId = new Map<string, Indexed>();

  onStore(entry: Entry): void {
    const id = idOf(entry);
    const previous = this.#byId.get(id);
    if (previous !== undefined) this.#unlink(id, previous);
    if (entry.tags.length === 0) return;
    this.#byId.set(id, { key: entry.key, variant: entry.variant, tags: entry.tags, storedAt: entry.storedAt });
    for (const tag of entry.tags) {
      let ids = this.#byTag.get(tag);
      if (ids === undefined) this.#byTag.set(tag, (ids = new Set()));
      ids.add(id);
    }
  }

  onRemove(entry: Entry, _reason: RemovalReason): void {
    const id = idOf(entry);
    const record = this.#byId.get(id);
    // A tier may hand back a copy of the object it announced; the same storedAt names the same response.
    if (record === undefined || record.storedAt !== entry.storedAt) return;
    this.#unlink(id, record);
  }

  /**
   * The ids of the variants carrying `tag` now: a copy, so purging may change
   * the store while walking it, and a cheap one (strings only), so even a
   * tag on 100,000 variants is snapshotted in a few milliseconds.
   */
  ids(tag: string): string[] {
    const ids = this.#byTag.get(tag);
    return ids === undefined ? [] : [...ids];
  }

  /** The variant an id names, while it is still indexed. */
  ref(id: string): VariantRef | undefined {
    return this.#byId.get(id);
  }

  /** The variants carrying `tag` now. */
  variants(tag: string): VariantRef[] {
    const refs: VariantRef[] = [];
    for (const id of this.ids(tag)) {
      const record = this.#byId.get(id);
      if (record !== undefined) refs.push({ key: record.key, variant: record.variant });
    }
    return refs;
  }

  /** How much the index holds: distinct tags, tagged variants, and (tag, variant) links. */
  size(): { tags: number; variants: number; links: number } {
    let links = 0;
    for (const ids of this.#byTag.values()) links += ids.size;
    return { tags: this.#byTag.size, variants: this.#byId.size, links };
  }

  #unlink(id: string, record: Indexed): void {
    this.#byId.delete(id);
    for (const tag of record.tags) {
      const ids = this.#byTag.get(tag);
      if (ids === undefined) continue;
      ids.delete(id);
      if (ids.size === 0) this.#byTag.delete(tag);
    }
  }
}

function idOf(entry: VariantRef): string {
  return entry.variant === '' ? entry.key : `${entry.key}\u0000${entry.variant}`;
}
