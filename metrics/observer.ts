import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Outcome } from '../proxy/deliver.js';
import { deliveredBodyBytes, flowChannel, requestChannel, staleBecauseOriginFailed, type FlowEvent, type RequestEvent } from '../proxy/events.js';
import type { ProxyRequest } from '../proxy/flow.js';
import type { RemovalReason, StoreListener } from '../proxy/store/store.js';
import type { AccessLog } from './access-log.js';
import { PURGE_CHANNEL, type PurgeEvent } from './purge-events.js';
import { REDIS_CHANNEL, type RedisEvent } from '../redis/events.js';
import type { Tally } from './tally.js';
import { REDIS_OPERATIONS, RESYNC_REASONS, CACHEABLE_OUTCOMES, FROM_CACHE_OUTCOMES, PURGE_KINDS, statusClass, type LacquerMetrics, type OriginClass, type StoreOperation } from './registry.js';

/**
 * Turns the proxy's events into metric updates and access-log lines. It
 * only listens: the proxy never calls it, and with it stopped the proxy
 * publishes nothing.
 */

export class ProxyObserver {
  readonly #metrics: LacquerMetrics | undefined;
  #accessLog: AccessLog | undefined;
  /** Origin time of each client request, joined to its request event for the access log. */
  readonly #originMs = new WeakMap<ProxyRequest, number>();
  /** Bound label children, so a hit does not rebuild label objects. */
  /** Per outcome, indexed by the status's hundreds digit. */
  readonly #requestTallies = new Map<Outcome, (Tally | undefined)[]>();
  readonly #durations = new Map<Outcome, (seconds: number) => void>();
  /** Per origin status class (or "error"): its request tally and its duration series. */
  readonly #origin = new Map<OriginClass, { readonly requests: Tally; readonly observe: (seconds: number) => void }>();
  readonly #bytesFromCache: Tally | undefined;
  readonly #bytesFromOrigin: Tally | undefined;
  readonly #cacheable: Tally | undefined;
  readonly #hits: Tally | undefined;
  #started = false;

  /** `metrics` is absent when metrics are disabled. */
  constructor(metrics: LacquerMetrics | undefined) {
    this.#metrics = metrics;
    this.#bytesFromCache = metrics?.servedBytes.tally('cache');
    this.#bytesFromOrigin = metrics?.servedBytes.tally('origin');
    this.#cacheable = metrics?.cacheableRequests.tally();
    this.#hits = metrics?.cacheHits.tally();
  }

  /**
   * Subscribes to the proxy's channels; `accessLog` is absent when access
   * lines would not be written at the configured level. With neither
   * metrics nor an access log it subscribes to nothing, so the proxy
   * publishes nothing.
   */
  start(accessLog?: AccessLog): void {
    if (this.#started || (this.#metrics === undefined && accessLog === undefined)) return;
    this.#accessLog = accessLog;
    this.#started = true;
    subscribe(requestChannel.name, this.#onRequest);
    subscribe(flowChannel.name, this.#onFlow);
    if (this.#metrics !== undefined) subscribe(PURGE_CHANNEL, this.#onPurge);
    if (this.#metrics !== undefined) subscribe(REDIS_CHANNEL, this.#onRedis);
  }

  stop(): void {
    if (!this.#started) return;
    this.#started = false;
    unsubscribe(requestChannel.name, this.#onRequest);
    unsubscribe(flowChannel.name, this.#onFlow);
    if (this.#metrics !== undefined) unsubscribe(PURGE_CHANNEL, this.#onPurge);
    if (this.#metrics !== undefined) unsubscribe(REDIS_CHANNEL, this.#onRedis);
  }

  /** A store listener that counts evictions and expirations for one tier. */
  storeListener(tier: string): StoreListener {
    const metrics = this.#metrics;
    if (metrics === undefined) return {};
    const evicted = metrics.evictions.labels(tier);
    const expired = metrics.expirations.labels(tier);
    return {
      onRemove: (_entry, reason: RemovalReason) => {
        if (reason === 'evict') evicted.inc();
        else if (reason === 'expire') expired.inc();
      },
    };
  }

  /** The flow's error hook: store failures are counted by operation (the flow names them "store lookup", "store write", "store delete"). */
  onFlowError(context: string): void {
    const operation = STORE_CONTEXTS[context];
    if (operation !== undefined) this.#metrics?.storeErrors.labels(operation).inc();
  }

  readonly #onRequest = (message: unknown): void => {
    const event = message as RequestEvent;
    const metrics = this.#metrics;
    if (metrics !== undefined) {
      const { outcome, delivery } = event;
      this.#requestTally(metrics, outcome, event.status).add();
      this.#duration(metrics, outcome)(event.durationMs / 1000);
      if (CACHEABLE_OUTCOMES.has(outcome)) {
        this.#cacheable!.add();
        // Stale served in place of a failing origin is not a cache success: it is counted apart, so it cannot hide an outage.
        if (outcome === 'hit' || (outcome === 'stale' && !staleBecauseOriginFailed(delivery))) this.#hits!.add();
        else if (outcome === 'stale') metrics.staleOnOriginError.inc();
      }
      if (outcome !== 'error') {
        const bytes = deliveredBodyBytes(delivery);
        if (bytes > 0) (FROM_CACHE_OUTCOMES.has(outcome) ? this.#bytesFromCache : this.#bytesFromOrigin)!.add(bytes);
      }
    }
    if (this.#accessLog !== undefined) {
      const originMs = this.#originMs.get(event.request);
      this.#originMs.delete(event.request);
      this.#accessLog.write(event, originMs);
    }
  };

  readonly #onFlow = (message: unknown): void => {
    const event = message as FlowEvent;
    const metrics = this.#metrics;
    switch (event.kind) {
      case 'origin': {
        if (this.#accessLog !== undefined) this.#originMs.set(event.request, (this.#originMs.get(event.request) ?? 0) + event.durationMs);
        if (metrics === undefined) return;
        const series = this.#originSeries(metrics, event.status === null ? 'error' : statusClass(event.status));
        series.requests.add();
        series.observe(event.durationMs / 1000);
        return;
      }
      case 'coalesced':
        metrics?.coalesced.inc();
        return;
      case 'refresh':
        if (event.phase === 'started') metrics?.refreshesStarted.inc();
        else if (event.phase === 'failed') metrics?.refreshesFailed.inc();
        return;
    }
  };

  readonly #onPurge = (message: unknown): void => {
    const event = message as Partial<PurgeEvent>;
    const metrics = this.#metrics;
    // The channel is public: anything not in the closed label sets is ignored rather than allowed to create series.
    if (metrics === undefined || !PURGE_KINDS.includes(event.kind as PurgeEvent['kind'])) return;
    const kind = event.kind as PurgeEvent['kind'];
    metrics.purges.labels(kind, event.soft === true ? 'soft' : 'hard').inc();
    if (typeof event.purged === 'number' && Number.isFinite(event.purged) && event.purged > 0) metrics.purgedEntries.labels(kind).inc(event.purged);
    if (typeof event.durationMs === 'number' && Number.isFinite(event.durationMs) && event.durationMs >= 0) {
      metrics.purgeDuration.labels(kind).observe(event.durationMs / 1000);
    }
  };

  readonly #onRedis = (message: unknown): void => {
    const event = message as RedisEvent;
    const metrics = this.#metrics;
    if (metrics === undefined) return;
    switch (event.kind) {
      case 'error':
        // Only the closed set of operations becomes a label.
        if ((REDIS_OPERATIONS as readonly string[]).includes(event.operation)) metrics.redisErrors.labels(event.operation).inc();
        return;
      case 'published':
        metrics.relayPublished.inc();
        return;
      case 'applied':
        metrics.relayApplied.inc();
        return;
      case 'folded':
        metrics.relayFolded.inc();
        return;
      case 'resync':
        if ((RESYNC_REASONS as readonly string[]).includes(event.reason)) metrics.relayResyncs.labels(event.reason).inc();
        return;
      case 'shared-lookup':
        metrics.sharedLookups.labels(event.found === true ? 'hit' : 'miss').inc();
        return;
    }
  };

  #requestTally(metrics: LacquerMetrics, outcome: Outcome, status: number): Tally {
    let byClass = this.#requestTallies.get(outcome);
    if (byClass === undefined) {
      byClass = [];
      this.#requestTallies.set(outcome, byClass);
    }
    const index = Math.min(5, Math.max(1, Math.floor(status / 100)));
    return (byClass[index] ??= metrics.requests.tally(outcome, statusClass(status)));
  }

  #originSeries(metrics: LacquerMetrics, label: OriginClass): { readonly requests: Tally; readonly observe: (seconds: number) => void } {
    let series = this.#origin.get(label);
    if (series === undefined) {
      series = { requests: metrics.originRequests.tally(label), observe: metrics.originDuration.series(label) };
      this.#origin.set(label, series);
    }
    return series;
  }

  #duration(metrics: LacquerMetrics, outcome: Outcome): (seconds: number) => void {
    let observe = this.#durations.get(outcome);
    if (observe === undefined) {
      observe = metrics.responseDuration.series(outcome);
      this.#durations.set(outcome, observe);
    }
    return observe;
  }
}

const STORE_CONTEXTS: Readonly<Record<string, StoreOperation>> = {
  'store lookup': 'lookup',
  'store write': 'write',
  'store delete': 'delete',
};
