import { resolve } from 'node:path';
import type { Config } from '../../config/types.js';
import { MemoryStore } from './memory.js';
import type { DiskSharing } from './disk.js';
import type { Store, StoreListener } from './store.js';
import { TieredStore } from './tiered.js';

export interface BuildStoreOptions {
  readonly clock: () => number;
  readonly listener?: StoreListener;
  /** Where a relative cache.disk.path is resolved. Default `process.cwd()`. */
  readonly cwd?: string;
  readonly log?: (message: string) => void;
  readonly onError?: (error: unknown, context: string) => void;
  /** Set in a worker: the disk tier is shared with the other workers (proxy/cluster/). */
  readonly diskSharing?: DiskSharing;
}

export type BuiltStore =
  | { readonly kind: 'memory'; readonly store: MemoryStore }
  | { readonly kind: 'tiered'; readonly store: TieredStore; readonly dir: string };

/** The store the config asks for: memory alone, or memory over disk. */
export function buildStore(config: Config, options: BuildStoreOptions): BuiltStore {
  const { memory, disk, maxVariants } = config.cache;
  if (!disk.enabled) {
    const store = new MemoryStore({ maxSize: memory.maxSize, maxVariants, clock: options.clock, ...(options.listener && { listener: options.listener }) });
    return { kind: 'memory', store };
  }
  const dir = resolve(options.cwd ?? process.cwd(), disk.path);
  const store = new TieredStore({
    memory,
    disk: { dir, maxSize: disk.maxSize, maxObjectSize: disk.maxObjectSize, ...(options.diskSharing && { shared: options.diskSharing }) },
    maxVariants,
    clock: options.clock,
    ...(options.listener && { listener: options.listener }),
    ...(options.log && { log: options.log }),
    ...(options.onError && { onError: options.onError }),
  });
  return { kind: 'tiered', store, dir };
}

export type { Store };
