import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/types.js';
import type { Store, StoreListener } from '../proxy/store/store.js';
import { AccessLog, type InfoLogger } from './access-log.js';
import { registerObservabilityRoutes, type Authorize } from './admin-routes.js';
import { ProxyObserver } from './observer.js';
import { createMetrics, type LacquerMetrics } from './registry.js';

/**
 * Observability as one unit for the composition root: the registry, the
 * event observer, the store listeners and the admin routes. main.ts
 * creates it before the stores (they take its listeners), then attaches
 * it to the listeners once they exist.
 */

export interface Tier {
  readonly tier: string;
  readonly store: Pick<Store, 'stats'> & { slabStats?(): { bytes: number; usedBytes: number; liveBytes: number }; readonly inUse?: boolean };
}

export interface AttachOptions {
  readonly admin: FastifyInstance;
  /** The proxy's logger; access lines go through it. */
  readonly logger: InfoLogger;
  /** Every tier, for the fill gauges. */
  readonly tiers: readonly Tier[];
  /** The store /explain reads and the tier name it reports. */
  readonly store: Store;
  readonly storeTier: string;
  readonly clock: () => number;
  /** Who may use /explain; default loopback clients only (the purge token plugs in here). */
  readonly authorize?: Authorize;
  /** In a worker: /metrics answers with every worker's metrics combined, from this source. */
  readonly scrape?: () => Promise<string>;
}

export interface Observability {
  /** Undefined when `metrics.enabled` is false. */
  readonly metrics: LacquerMetrics | undefined;
  storeListener(tier: string): StoreListener;
  /** For the flow's onError hook: counts store failures. */
  onFlowError(context: string): void;
  attach(options: AttachOptions): void;
  /** The purge relay's state, for the Redis gauges (main.ts calls it once the relay exists). */
  watchRelay(status: () => { connected: boolean; queued: number }): void;
  /** Stops listening to the proxy's events. */
  close(): void;
}

export function createObservability(config: Config): Observability {
  let tiers: readonly Tier[] = [];
  let relay: (() => { connected: boolean; queued: number }) | undefined;
  const metrics = config.metrics.enabled
    ? createMetrics({
        tiers: () => tiers.map(({ tier, store }) => ({ tier, stats: store.stats() })),
        relay: () => relay?.(),
        slabs: () => tiers.find(({ store }) => store.slabStats !== undefined)?.store.slabStats?.(),
        ...(config.cache.disk.enabled && { diskInUse: () => tiers.find(({ tier }) => tier === 'disk')?.store.inUse === true }),
      })
    : undefined;
  const observer = new ProxyObserver(metrics);

  return {
    metrics,
    storeListener: (tier) => observer.storeListener(tier),
    onFlowError: (context) => observer.onFlowError(context),
    attach(options) {
      tiers = options.tiers;
      observer.start(AccessLog.enabledAt(config.log.level) ? new AccessLog(options.logger) : undefined);
      registerObservabilityRoutes(options.admin, {
        registry: metrics?.registry,
        scrape: options.scrape,
        explain: {
          store: options.store,
          tier: options.storeTier,
          key: config.key,
          honorRequestCacheControl: config.cache.honorRequestCacheControl,
          clock: options.clock,
          authorize: options.authorize,
        },
      });
    },
    watchRelay(status) {
      relay = status;
    },
    close() {
      observer.stop();
    },
  };
}
