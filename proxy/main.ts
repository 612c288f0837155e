import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/types.js';
import { startExampleOrigin } from '../examples/origin.js';
import { attachPurge } from '../purge/attach.js';
import { TagIndex } from '../purge/tag-index.js';
import { createObservability } from '../metrics/index.js';
import { buildAdminServer } from './admin.js';
import { buildProxyServer } from './server.js';
import { fanOut } from './store/fan-out.js';
import { MemoryStore } from './store/memory.js';
import { Origin } from './upstream/origin.js';

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
  /** Stops accepting requests, lets in-flight ones finish, then releases everything. */
  close(): Promise<void>;
}

const SWEEP_INTERVAL_MS = 30_000;

export interface StartOptions {
  /** Epoch milliseconds; tests move it by hand. Default Date.now. */
  readonly clock?: () => number;
}

export async function startLacquer(config: Config, options: StartOptions = {}): Promise<RunningLacquer> {
  const example = config.origin.url === null ? await startExampleOrigin({ host: '127.0.0.1', port: 0 }) : undefined;
  const originUrl = config.origin.url ?? example!.url;
  const logger = config.log.level === 'silent' ? false : { level: config.log.level };

  const clock = options.clock ?? Date.now;
  const observability = createObservability(config);
  const tagIndex = new TagIndex();
  const store = new MemoryStore({ maxSize: config.cache.memory.maxSize, maxVariants: config.cache.maxVariants, clock, listener: fanOut([tagIndex, observability.storeListener('memory')]) });
  const origin = new Origin(originUrl, config.origin);
  const proxy = buildProxyServer({
    config,
    store,
    origin,
    clock,
    logger,
    onError: (error, context) => {
      observability.onFlowError(context);
      proxy.app.log.warn({ err: error, context }, context);
    },
  });
  const admin = buildAdminServer({ origin, logger });
  const purge = attachPurge({ config, index: tagIndex, store, invalidations: proxy.flow.invalidations, proxyApp: proxy.app, adminApp: admin, clock });
  observability.attach({ admin, logger: proxy.app.log, tiers: [{ tier: 'memory', store }], store, storeTier: 'memory', clock, authorize: purge.allows });

  const sweeper = setInterval(() => store.sweep(clock()), SWEEP_INTERVAL_MS);
  sweeper.unref();

  try {
    await proxy.app.listen({ host: config.listen.host, port: config.listen.port });
    await admin.listen({ host: config.admin.host, port: config.admin.port });
  } catch (error) {
    clearInterval(sweeper);
    observability.close();
    await Promise.allSettled([proxy.app.close(), admin.close(), origin.close(), example?.close()]);
    throw error;
  }

  return {
    proxyUrl: urlOf(proxy.app),
    adminUrl: urlOf(admin),
    originUrl,
    exampleOrigin: example !== undefined,
    close: async () => {
      clearInterval(sweeper);
      await Promise.allSettled([proxy.app.close(), admin.close()]);
      observability.close();
      await origin.close();
      await example?.close();
      store.close();
    },
  };
}

function urlOf(app: FastifyInstance): string {
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}
