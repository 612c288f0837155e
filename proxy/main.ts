import type { AddressInfo, Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/types.js';
import { startExampleOrigin } from '../examples/origin.js';
import { attachPurge } from '../purge/attach.js';
import { TagIndex } from '../purge/tag-index.js';
import { createObservability } from '../metrics/index.js';
import { attachRedis, attachShared, type AttachedRedis } from '../redis/attach.js';
import { buildAdminServer, type ReadinessPart } from './admin.js';
import type { WorkerHooks } from './cluster/hooks.js';
import { buildProxyServer } from './server.js';
import { fanOut } from './store/fan-out.js';
import { buildStore } from './store/build.js';
import { Origin } from './upstream/origin.js';
import { planReload, type ReloadPlan } from './process/reload.js';

/**
 * The composition root: builds the store, the origin transport, the proxy
 * and admin listeners from a validated config, and takes them down again
 * in order. Nothing else constructs these parts.
 */
export interface RunningLacquer {
  readonly proxyUrl: string;
  readonly adminUrl: string;
  readonly originUrl: string;
  /** True when no origin was configured and the bundled example origin was started. */
  readonly exampleOrigin: boolean;
  /** The config in force: the one started with, plus any reloaded fields. */
  readonly config: Config;
  /**
   * Stops accepting requests and lets in-flight ones finish for up to
   * `drainTimeoutMs` (default: the config's shutdown.drainTimeout); then
   * closes the connections still open, publishes purges still queued for
   * Redis in what is left of that time, and releases everything.
   */
  close(options?: { readonly drainTimeoutMs?: number }): Promise<DrainReport>;
  /** Applies the reloadable fields of a validated config (proxy/process/reload.ts); the cache is kept. */
  reload(next: Config): ReloadPlan;
}

export interface DrainReport {
  /** Connections still open at the deadline, closed without waiting further (0 when the drain finished in time). */
  readonly cutConnections: number;
  readonly ms: number;
}

const SWEEP_INTERVAL_MS = 30_000;
/** What queued purges get at shutdown even when the drain used its whole deadline: one more try to publish them. */
const MIN_PURGE_FLUSH_MS = 1000;

export interface StartOptions {
  /** Epoch milliseconds; tests move it by hand. Default Date.now. */
  readonly clock?: () => number;
  /** Set in one of several workers (proxy/cluster/): shares the disk tier, purges and metrics with the others. */
  readonly worker?: WorkerHooks;
}

export async function startLacquer(config: Config, options: StartOptions = {}): Promise<RunningLacquer> {
  const example = config.origin.url === null ? await startExampleOrigin({ host: '127.0.0.1', port: 0 }) : undefined;
  const originUrl = config.origin.url ?? example!.url;
  const logger = config.log.level === 'silent' ? false : { level: config.log.level };

  const clock = options.clock ?? Date.now;
  const observability = createObservability(config);
  const tagIndex = new TagIndex();
  // With the disk tier, the tiered store reports for the disk (memory evictions lose nothing there).
  const evictionTier = config.cache.disk.enabled ? 'disk' : 'memory';
  // The store may log before the proxy's logger exists (its boot scan runs in the background).
  let warn: (message: string, error?: unknown) => void = (message) => process.stderr.write(`${message}\n`);
  const built = buildStore(config, {
    clock,
    listener: fanOut([tagIndex, observability.storeListener(evictionTier)]),
    log: (message) => warn(message),
    onError: (error, context) => warn(context, error),
    ...(options.worker && { diskSharing: options.worker.diskSharing }),
  });
  // With the shared tier, the local tiers sit over Redis; everything else sees one store.
  const shared = config.redis.url !== null && config.redis.shared.enabled ? attachShared(config, built.store, clock, (error, context) => warn(context, error)) : undefined;
  const store = shared?.store ?? built.store;
  const origin = new Origin(originUrl, config.origin);
  const proxy = buildProxyServer({
    config,
    store,
    origin,
    clock,
    logger,
    // The fast hit path answers before Fastify's hooks, which is where a worker names its responses.
    fastHits: options.worker?.namesResponses !== true,
    onError: (error, context) => {
      observability.onFlowError(context);
      proxy.app.log.warn({ err: error, context }, context);
    },
  });
  if (built.kind === 'tiered') {
    // Entries a later claim of the directory finds: purges made here meanwhile apply to them (see DiskStore.keepFoundIf).
    const since = proxy.flow.invalidations.stamp();
    built.store.disk.keepFoundIf((key, tags) => proxy.flow.invalidations.mayStore(key, since, tags));
  }
  const readiness: (() => ReadinessPart)[] = [];
  const admin = buildAdminServer({ origin, logger, parts: () => readiness.map((part) => part()) });
  shared?.store.watchPurges(proxy.flow.invalidations);
  shared?.store.watchPassThrough((key) => proxy.flow.passesThrough(key));
  const purge = attachPurge({ config, index: tagIndex, store, invalidations: proxy.flow.invalidations, proxyApp: proxy.app, adminApp: admin, clock });
  const tiers = built.kind === 'tiered' ? [{ tier: 'memory', store: built.store.memory }, { tier: 'disk', store: built.store.disk }] : [{ tier: 'memory', store: built.store }];
  observability.attach({ admin, logger: proxy.app.log, tiers, store, storeTier: built.kind, clock, authorize: purge.allows, ...(options.worker && { scrape: options.worker.scrape }) });
  options.worker?.attach({ purger: purge.purger, registry: observability.metrics?.registry, disk: built.kind === 'tiered' ? built.store.disk : undefined, proxyApp: proxy.app, adminApp: admin });
  warn = (message, error) => proxy.app.log.warn(error === undefined ? {} : { err: error }, message);
  if (built.kind === 'tiered') {
    const started = performance.now();
    // Serving starts at once; entries become hits as the scan finds them.
    void built.store.ready.then(() => {
      // Off (directory held elsewhere, or refused): that is logged instead, and so is a later takeover's rebuild.
      if (!built.store.disk.inUse) return;
      const { entries, bytes } = built.store.stats();
      proxy.app.log.info({ dir: built.dir, entries, bytes, ms: Math.round(performance.now() - started) }, 'disk cache index rebuilt');
    });
  }

  const connections = trackConnections([proxy.app, admin]);

  let redis: AttachedRedis | undefined;
  if (config.redis.url !== null) {
    // A tag purge finds entries through the index, which the disk tier rebuilds at boot: catch up on purges only once it is whole.
    if (built.kind === 'tiered') await built.store.ready;
    const log = admin.log;
    redis = attachRedis({ config, purger: purge.purger, ...(shared === undefined ? {} : { shared }), cacheDir: built.kind === 'tiered' ? built.dir : undefined, log: { info: (details, message) => log.info(details, message), warn: (details, message) => log.warn(details, message) } });
    readiness.push(redis.readiness);
    observability.watchRelay(() => redis!.stream.status());
    // Catch up before serving, so entries purged elsewhere while this instance was away are not served; without Redis, serve anyway (as a connected instance does during an outage) and catch up when it returns.
    const caughtUp = await redis.stream.caughtUp(config.redis.connectTimeout);
    log.info({ instanceId: redis.instanceId, caughtUp }, caughtUp ? 'redis: purge stream read to its end' : 'redis: not reachable yet; serving from local tiers, purges will follow');
  }

  const sweeper = setInterval(() => store.sweep(clock()), SWEEP_INTERVAL_MS);
  sweeper.unref();

  try {
    await proxy.app.listen({ host: config.listen.host, port: config.listen.port });
    await admin.listen({ host: config.admin.host, port: config.admin.port });
  } catch (error) {
    clearInterval(sweeper);
    observability.close();
    await Promise.allSettled([proxy.app.close(), admin.close(), origin.close(), example?.close(), redis?.close(), store.close()]);
    shared?.close();
    throw error;
  }

  let current = config;
  return {
    proxyUrl: urlOf(proxy.app),
    adminUrl: urlOf(admin),
    originUrl,
    exampleOrigin: example !== undefined,
    get config() {
      return current;
    },
    reload: (next) => {
      const plan = planReload(current, next);
      current = plan.config;
      proxy.flow.reconfigure(current);
      purge.setAccess(current.purge);
      // A logger that was off at start ('silent' builds none) stays off: Fastify cannot add one later.
      if (logger !== false) for (const app of [proxy.app, admin]) app.log.level = current.log.level;
      return plan;
    },
    close: async (options = {}) => {
      const started = performance.now();
      const drainTimeoutMs = options.drainTimeoutMs ?? current.shutdown.drainTimeout;
      clearInterval(sweeper);
      // A keep-alive connection whose streamed answer ends during the drain is closed then, not after the keep-alive timeout.
      const idle = setInterval(() => proxy.app.server.closeIdleConnections(), 50);
      let cutConnections = 0;
      const deadline = setTimeout(() => {
        cutConnections = connections.size;
        proxy.app.server.closeAllConnections();
        admin.server.closeAllConnections();
      }, drainTimeoutMs);
      await Promise.allSettled([proxy.app.close(), admin.close()]).finally(() => {
        clearInterval(idle);
        clearTimeout(deadline);
      });
      // Purges made here and still queued for Redis (it was away) are published in what is left of the drain, then the connections go.
      await redis?.close(Math.max(MIN_PURGE_FLUSH_MS, drainTimeoutMs - (performance.now() - started)));
      observability.close();
      // Fills and refreshes whose clients are gone may still be reading from the origin; past the deadline they are cut.
      if (cutConnections > 0) await origin.destroy();
      else await withDeadline(origin.close(), Math.max(0, drainTimeoutMs - (performance.now() - started)), () => origin.destroy());
      await example?.close();
      await store.close();
      shared?.close();
      return { cutConnections, ms: performance.now() - started };
    },
  };
}

/** Open client connections to the listeners, so a drain that runs out of time can say how many it cut. */
function trackConnections(apps: readonly FastifyInstance[]): Set<Socket> {
  const open = new Set<Socket>();
  for (const app of apps) {
    app.server.on('connection', (socket: Socket) => {
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    });
  }
  return open;
}

/** Waits for `work`, or past `ms` runs `fallback` and waits for that instead. */
async function withDeadline(work: Promise<void>, ms: number, fallback: () => Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((done) => (timer = setTimeout(() => done('late'), ms)));
  const outcome = await Promise.race([work.then(() => 'done' as const), late]).finally(() => clearTimeout(timer));
  if (outcome === 'late') await fallback();
}

function urlOf(app: FastifyInstance): string {
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}
