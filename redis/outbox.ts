import type { RelayedPurge } from '../purge/purger.js';
import { PURGE_EVERYTHING } from './purge-message.js';

/**
 * Purges made here that Redis has not taken yet, oldest first, bounded.
 * When the bound is reached nothing is dropped: the queue folds into one
 * purge of everything, which covers every purge it replaces (the other
 * instances refetch more than needed, but serve nothing a purge removed).
 */
export class PurgeOutbox {
  readonly #limit: number;
  #items: RelayedPurge[] = [];

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('the outbox limit must be a whole number, at least 1');
    this.#limit = limit;
  }

  get size(): number {
    return this.#items.length;
  }

  /** Answers "folded" when the purge (and everything queued) became one purge of everything. */
  push(purge: RelayedPurge): 'queued' | 'folded' {
    if (this.#items.length < this.#limit) {
      this.#items.push(purge);
      return 'queued';
    }
    this.#items = [PURGE_EVERYTHING];
    return 'folded';
  }

  peek(): RelayedPurge | undefined {
    return this.#items[0];
  }

  /**
   * Removes `published` from the head, once it is published. If the queue
   * folded while it was being published, the head is now the purge of
   * everything standing for the whole queue, and it stays.
   */
  shiftIf(published: RelayedPurge): void {
    if (this.#items[0] === published) this.#items.shift();
  }
}
