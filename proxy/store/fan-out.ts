import type { Entry } from '../cache/entry.js';
import type { RemovalReason, StoreListener } from './store.js';

/**
 * One listener that tells several (purge's tag index, metrics, …), so a
 * store keeps a single `listener` option. A listener that throws is
 * reported and does not stop the others or the store.
 */
export function fanOut(listeners: readonly StoreListener[], onError?: (error: unknown) => void): StoreListener {
  const call = (action: (listener: StoreListener) => void): void => {
    for (const listener of listeners) {
      try {
        action(listener);
      } catch (error) {
        onError?.(error);
      }
    }
  };
  return {
    onStore: (entry: Entry) => call((listener) => listener.onStore?.(entry)),
    onRemove: (entry: Entry, reason: RemovalReason) => call((listener) => listener.onRemove?.(entry, reason)),
  };
}
