import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config/types.js';
import type { Invalidations } from '../proxy/cache/coalesce.js';
import type { Store } from '../proxy/store/store.js';
import { purgeRoutes } from './admin-routes.js';
import { createAuthorizer, type Authorizer } from './auth.js';
import type { PurgeEvent } from './events.js';
import { allowedLikePurge } from './http.js';
import { purgeMethodHook } from './method.js';
import { Purger } from './purger.js';
import type { TagIndex } from './tag-index.js';

/**
 * Wires purge into a running composition: the tag index (already the
 * store's listener), the store, the flow's invalidation stamps, and both
 * listeners. Called by proxy/main.ts before the listeners start.
 */
export interface PurgeParts {
  readonly config: Config;
  readonly index: TagIndex;
  readonly store: Store;
  readonly invalidations: Invalidations;
  readonly proxyApp: FastifyInstance;
  readonly adminApp: FastifyInstance;
  readonly clock: () => number;
  /** Keys handled between yields to the event loop (tests and benchmarks vary it). */
  readonly sliceSize?: number;
}

export interface AttachedPurge {
  readonly purger: Purger;
  readonly authorizer: Authorizer;
  /** The same check as purge, for other guarded admin routes (explain). */
  readonly allows: (request: FastifyRequest) => boolean;
  /** Replaces who may purge (a config reload); requests already authorized are not affected. */
  setAccess(access: { readonly token: string | null; readonly allow: readonly string[] }): void;
}

export function attachPurge(parts: PurgeParts): AttachedPurge {
  const { config } = parts;
  let current = createAuthorizer({ token: config.purge.token, allow: config.purge.allow });
  const authorizer: Authorizer = { authorize: (request) => current.authorize(request) };
  const log = parts.adminApp.log;
  const purger = new Purger({
    store: parts.store,
    index: parts.index,
    invalidations: parts.invalidations,
    keyOptions: config.key,
    clock: parts.clock,
    ...(parts.sliceSize === undefined ? {} : { sliceSize: parts.sliceSize }),
    onPurge: (event: PurgeEvent) => log.info({ purge: event }, `purge ${event.kind} ${event.soft ? 'soft' : 'hard'}: ${event.purged} entries in ${event.durationMs.toFixed(1)} ms`),
    onError: (error, context) => log.warn({ err: error, context }, 'purge store operation failed'),
  });
  if (config.purge.method) parts.proxyApp.addHook('onRequest', purgeMethodHook({ purger, authorizer, tagHeader: config.purge.tagHeader }));
  void parts.adminApp.register(purgeRoutes({ purger, authorizer, maxBodySize: config.purge.maxBodySize }));
  return {
    purger,
    authorizer,
    allows: allowedLikePurge(authorizer),
    setAccess: (access) => {
      current = createAuthorizer(access);
    },
  };
}
