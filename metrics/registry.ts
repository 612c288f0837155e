import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Outcome } from '../proxy/deliver.js';
import { FastHistogram } from './fast-histogram.js';
import { talliedCounter, type TalliedCounter } from './tally.js';

/**
 * Lacquer's own prom-client registry and every metric in it. Labels are
 * small closed sets (outcome, status class, tier, purge kind): never a URL,
 * a key or a tag, so the number of series stays bounded whatever the
 * traffic.
 */

export const PREFIX = 'lacquer_';

export const OUTCOMES: readonly Outcome[] = ['hit', 'stale', 'revalidated', 'miss', 'pass', 'hitmiss', 'error'];
/** Outcomes that looked a key up in the cache: the denominator of the hit ratio. */
export const CACHEABLE_OUTCOMES: ReadonlySet<Outcome> = new Set(['hit', 'stale', 'revalidated', 'miss']);
/** Outcomes whose body came out of the store rather than from the origin. */
export const FROM_CACHE_OUTCOMES: ReadonlySet<Outcome> = new Set(['hit', 'stale', 'revalidated']);

export type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx';
/** An origin request's label: the status class of its answer, or "error" when none arrived. */
export type OriginClass = StatusClass | 'error';
export const ORIGIN_CLASSES: readonly OriginClass[] = ['1xx', '2xx', '3xx', '4xx', '5xx', 'error'];
export type PurgeKind = 'url' | 'tag' | 'prefix' | 'all';
export const PURGE_KINDS: readonly PurgeKind[] = ['url', 'tag', 'prefix', 'all'];
export type StoreOperation = 'lookup' | 'write' | 'delete';

/** Where time is spent on a hit is well under a millisecond; an origin takes tens to thousands. */
const RESPONSE_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const ORIGIN_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export const REDIS_OPERATIONS = ['connection', 'publish', 'read', 'apply', 'shared'] as const;
export const RESYNC_REASONS = ['trimmed', 'reset'] as const;

/** What the store gauges read at scrape time. */
export interface ScrapeSources {
  /** Every tier with its current fill. */
  readonly tiers: () => readonly { tier: string; stats: { entries: number; bytes: number; maxBytes: number } }[];
  /** The purge relay through Redis, when one is configured. */
  readonly relay?: () => { connected: boolean; queued: number } | undefined;
  /** The memory tier's body slabs (proxy/store/slabs.ts). */
  readonly slabs?: () => { bytes: number; usedBytes: number; liveBytes: number } | undefined;
  /** Set with a disk tier: whether it is in use (not while another holder keeps its directory, or it was refused). */
  readonly diskInUse?: () => boolean;
}

export interface LacquerMetrics {
  readonly registry: Registry;
  /** Counted on every request: tallied, see tally.ts. */
  readonly requests: TalliedCounter<'outcome' | 'status_class'>;
  /** Observed on every request: see fast-histogram.ts. */
  readonly responseDuration: FastHistogram<Outcome>;
  readonly cacheHits: TalliedCounter<never>;
  readonly cacheableRequests: TalliedCounter<never>;
  readonly coalesced: Counter;
  readonly refreshesStarted: Counter;
  readonly refreshesFailed: Counter;
  readonly staleOnOriginError: Counter;
  /** Counted on every origin request: tallied, see tally.ts. */
  readonly originRequests: TalliedCounter<'status_class'>;
  /** Observed on every origin request: see fast-histogram.ts. */
  readonly originDuration: FastHistogram<OriginClass>;
  readonly servedBytes: TalliedCounter<'source'>;
  readonly evictions: Counter<'tier'>;
  readonly expirations: Counter<'tier'>;
  readonly storeErrors: Counter<'operation'>;
  readonly purges: Counter<'kind' | 'mode'>;
  readonly purgedEntries: Counter<'kind'>;
  readonly purgeDuration: Histogram<'kind'>;
  readonly redisErrors: Counter<'operation'>;
  readonly relayPublished: Counter;
  readonly relayApplied: Counter;
  readonly relayFolded: Counter;
  readonly relayResyncs: Counter<'reason'>;
  readonly sharedLookups: Counter<'result'>;
}

export function createMetrics(sources: ScrapeSources): LacquerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
  const registers = [registry];

  const requests = talliedCounter({
    name: `${PREFIX}requests_total`,
    help: 'Requests answered, by cache outcome (as in Cache-Status) and response status class.',
    labelNames: ['outcome', 'status_class'] as const,
    registers,
  });
  const responseDuration = new FastHistogram<Outcome>({
    name: `${PREFIX}response_duration_seconds`,
    help: 'Time from a request arriving to its answer being ready to send, by cache outcome.',
    label: 'outcome',
    values: OUTCOMES,
    buckets: RESPONSE_BUCKETS,
    registers,
  });
  const cacheHits = talliedCounter<never>({
    name: `${PREFIX}cache_hits_total`,
    help: 'Cacheable requests answered from the cache without asking the origin (hit, or stale while revalidating). Stale served because the origin failed is not counted here.',
    registers,
  });
  const cacheableRequests = talliedCounter<never>({
    name: `${PREFIX}cacheable_requests_total`,
    help: 'Requests that looked a key up in the cache (outcomes hit, stale, revalidated, miss).',
    registers,
  });
  new Gauge({
    name: `${PREFIX}cache_hit_ratio`,
    help: 'cache_hits_total / cacheable_requests_total over the life of the process (0 before any cacheable request).',
    registers,
    async collect() {
      const hits = (await cacheHits.counter.get()).values[0]?.value ?? 0;
      const cacheable = (await cacheableRequests.counter.get()).values[0]?.value ?? 0;
      this.set(cacheable === 0 ? 0 : hits / cacheable);
    },
  });
  const coalesced = new Counter({
    name: `${PREFIX}coalesced_requests_total`,
    help: "Requests that waited on another request's origin fetch instead of making their own.",
    registers,
  });
  const refreshesStarted = new Counter({
    name: `${PREFIX}background_refreshes_started_total`,
    help: 'stale-while-revalidate background refreshes started.',
    registers,
  });
  const refreshesFailed = new Counter({
    name: `${PREFIX}background_refreshes_failed_total`,
    help: 'Background refreshes that ended without a fresh response (origin unreachable, 5xx).',
    registers,
  });
  const staleOnOriginError = new Counter({
    name: `${PREFIX}stale_on_origin_error_total`,
    help: 'Stale responses served because the origin failed (stale-if-error): content the origin could not currently provide.',
    registers,
  });
  // Counted and observed once per request that reaches the origin: tallied and fast, as the per-request metrics are.
  const originRequests = talliedCounter({
    name: `${PREFIX}origin_requests_total`,
    help: 'Requests sent to the origin, by response status class ("error" when no response arrived).',
    labelNames: ['status_class'] as const,
    registers,
  });
  const originDuration = new FastHistogram<OriginClass>({
    name: `${PREFIX}origin_request_duration_seconds`,
    help: "Time until the origin's response headers arrived (or the request failed), by status class.",
    label: 'status_class',
    values: ORIGIN_CLASSES,
    buckets: ORIGIN_BUCKETS,
    registers,
  });
  const servedBytes = talliedCounter({
    name: `${PREFIX}served_bytes_total`,
    help: 'Response body bytes sent to clients, by where they came from: "cache" (hit, stale, revalidated) or "origin" (miss, pass, hitmiss).',
    labelNames: ['source'] as const,
    registers,
  });
  new Gauge({
    name: `${PREFIX}store_entries`,
    help: 'Entries (variants) held, by store tier.',
    labelNames: ['tier'] as const,
    registers,
    collect() {
      for (const { tier, stats } of sources.tiers()) this.labels(tier).set(stats.entries);
    },
  });
  new Gauge({
    name: `${PREFIX}store_bytes`,
    help: 'Bytes held, by store tier.',
    labelNames: ['tier'] as const,
    registers,
    collect() {
      for (const { tier, stats } of sources.tiers()) this.labels(tier).set(stats.bytes);
    },
  });
  new Gauge({
    name: `${PREFIX}store_max_bytes`,
    help: 'Bytes each store tier may hold.',
    labelNames: ['tier'] as const,
    registers,
    collect() {
      for (const { tier, stats } of sources.tiers()) this.labels(tier).set(stats.maxBytes);
    },
  });
  new Gauge({
    name: `${PREFIX}memory_slab_bytes`,
    help: 'The memory tier\'s body slabs: "allocated" bytes, bytes "written" into them, and bytes of bodies still "held". Allocated far above held means slabs left part-empty by evictions.',
    labelNames: ['state'] as const,
    registers,
    collect() {
      const slabs = sources.slabs?.();
      if (slabs === undefined) return;
      this.labels('allocated').set(slabs.bytes);
      this.labels('written').set(slabs.usedBytes);
      this.labels('held').set(slabs.liveBytes);
    },
  });
  const diskInUse = sources.diskInUse;
  if (diskInUse !== undefined) {
    new Gauge({
      name: `${PREFIX}disk_tier_in_use`,
      help: 'Whether the disk tier stores and answers (1), or is off (0): its directory is held by another Lacquer (it is claimed again every 5 s) or was refused. With workers, the number of workers whose disk tier is in use.',
      registers,
      collect() {
        this.set(diskInUse() ? 1 : 0);
      },
    });
  }
  const evictions = new Counter({
    name: `${PREFIX}store_evictions_total`,
    help: 'Entries evicted to make room (size bound or variant cap), by tier.',
    labelNames: ['tier'] as const,
    registers,
  });
  const expirations = new Counter({
    name: `${PREFIX}store_expirations_total`,
    help: 'Entries removed because they reached their delete time, by tier.',
    labelNames: ['tier'] as const,
    registers,
  });
  const storeErrors = new Counter({
    name: `${PREFIX}store_errors_total`,
    help: 'Store operations that failed (the request passed through to the origin), by operation.',
    labelNames: ['operation'] as const,
    registers,
  });
  const purges = new Counter({
    name: `${PREFIX}purges_total`,
    help: 'Purge requests carried out, by kind (url, tag, prefix, all) and mode (hard, soft).',
    labelNames: ['kind', 'mode'] as const,
    registers,
  });
  const purgedEntries = new Counter({
    name: `${PREFIX}purged_entries_total`,
    help: 'Entries removed or marked stale by purges, by purge kind.',
    labelNames: ['kind'] as const,
    registers,
  });
  const purgeDuration = new Histogram({
    name: `${PREFIX}purge_duration_seconds`,
    help: 'Time a purge took, by kind.',
    labelNames: ['kind'] as const,
    buckets: [0.0001, 0.001, 0.01, 0.1, 1, 10],
    registers,
  });

  const redisErrors = new Counter({
    name: `${PREFIX}redis_errors_total`,
    help: 'Redis failures, by operation: connection (lost or refused), publish (a purge was queued instead), read (the purge stream), apply (a relayed purge this instance could not carry out), shared (a shared-tier lookup, write or delete; the request went on without it).',
    labelNames: ['operation'] as const,
    registers,
  });
  new Gauge({
    name: `${PREFIX}redis_connected`,
    help: 'Whether both Redis connections (publish and read) are up: 1 or 0. Absent without Redis.',
    registers,
    collect() {
      const status = sources.relay?.();
      if (status !== undefined) this.set(status.connected ? 1 : 0);
    },
  });
  new Gauge({
    name: `${PREFIX}purge_relay_queue`,
    help: 'Purges made here waiting for Redis to take them (bounded by redis.purge.queueSize).',
    registers,
    collect() {
      const status = sources.relay?.();
      if (status !== undefined) this.set(status.queued);
    },
  });
  const relayPublished = new Counter({
    name: `${PREFIX}purge_relay_published_total`,
    help: 'Purges made here and published to the Redis purge stream.',
    registers,
  });
  const relayApplied = new Counter({
    name: `${PREFIX}purge_relay_applied_total`,
    help: 'Purges made by other instances and applied here from the Redis purge stream.',
    registers,
  });
  const relayFolded = new Counter({
    name: `${PREFIX}purge_relay_folded_total`,
    help: 'Times the purge queue filled while Redis was away and its purges were folded into one purge of everything.',
    registers,
  });
  const relayResyncs = new Counter({
    name: `${PREFIX}purge_relay_resyncs_total`,
    help: 'Purges of everything held here because purges could not be known: trimmed (the stream dropped entries not yet read) or reset (Redis lost the stream).',
    labelNames: ['reason'] as const,
    registers,
  });

  const sharedLookups = new Counter({
    name: `${PREFIX}shared_tier_lookups_total`,
    help: 'Lookups in the shared tier in Redis after the local tiers missed, by result: hit (copied into the local tiers) or miss.',
    labelNames: ['result'] as const,
    registers,
  });

  // Series that exist from the start read 0 instead of being absent, so rate() and the dashboard work from the first scrape.
  for (const source of ['cache', 'origin']) servedBytes.counter.labels(source).inc(0);
  for (const kind of PURGE_KINDS) purgedEntries.labels(kind).inc(0);
  for (const operation of REDIS_OPERATIONS) redisErrors.labels(operation).inc(0);
  for (const reason of RESYNC_REASONS) relayResyncs.labels(reason).inc(0);

  return {
    registry,
    requests,
    responseDuration,
    cacheHits,
    cacheableRequests,
    coalesced,
    refreshesStarted,
    refreshesFailed,
    staleOnOriginError,
    originRequests,
    originDuration,
    servedBytes,
    evictions,
    expirations,
    storeErrors,
    purges,
    purgedEntries,
    purgeDuration,
    redisErrors,
    relayPublished,
    relayApplied,
    relayFolded,
    relayResyncs,
    sharedLookups,
  };
}

export function statusClass(status: number): StatusClass {
  if (status < 200) return '1xx';
  if (status < 300) return '2xx';
  if (status < 400) return '3xx';
  if (status < 500) return '4xx';
  return '5xx';
}
