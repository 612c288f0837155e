import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { defaults } from '../../config/schema.js';
import type { Config } from '../../config/types.js';
import { attachPurge } from '../../purge/attach.js';
import type { Purger } from '../../purge/purger.js';
import { TagIndex } from '../../purge/tag-index.js';
import { buildAdminServer } from '../../proxy/admin.js';
import type { Flow } from '../../proxy/flow.js';
import { buildProxyServer } from '../../proxy/server.js';
import { fanOut } from '../../proxy/store/fan-out.js';
import { MemoryStore } from '../../proxy/store/memory.js';
import type { Store } from '../../proxy/store/store.js';
import { Origin } from '../../proxy/upstream/origin.js';
import { fetchText, type TestResponse } from './proxy.js';

/**
 * The proxy and admin listeners on loopback ports, wired with purge the way
 * proxy/main.ts wires them: a memory store whose listener feeds the tag
 * index, and purge attached to both listeners.
 */
export interface PurgeTestProxy {
  readonly url: string;
  readonly adminUrl: string;
  readonly flow: Flow;
  readonly store: MemoryStore;
  readonly index: TagIndex;
  readonly purger: Purger;
  readonly config: Config;
  fetch(path: string, init?: RequestInit): Promise<TestResponse>;
  admin(path: string, init?: RequestInit): Promise<TestResponse>;
  close(): Promise<void>;
}

export interface RequestInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface PurgeTestOptions {
  clock?: () => number;
  /** Overrides of config sections, shallowly merged per section. */
  purge?: Partial<Config['purge']>;
  cache?: Partial<Config['cache']>;
  key?: Partial<Config['key']>;
  sliceSize?: number;
  logs?: unknown[];
  /** Wraps the memory store the proxy uses (to slow a write down, say); the tag index stays on the memory store. */
  wrapStore?: (store: MemoryStore) => Store;
}

export async function startPurgeProxy(originUrl: string, options: PurgeTestOptions = {}): Promise<PurgeTestProxy> {
  const base = defaults();
  const config: Config = {
    ...base,
    origin: { ...base.origin, url: originUrl },
    cache: { ...base.cache, ...options.cache },
    key: { ...base.key, ...options.key },
    purge: { ...base.purge, ...options.purge },
  };
  const clock = options.clock ?? Date.now;
  const index = new TagIndex();
  const store = new MemoryStore({ maxSize: config.cache.memory.maxSize, maxVariants: config.cache.maxVariants, clock, listener: fanOut([index]) });
  const origin = new Origin(originUrl, config.origin);
  const used = options.wrapStore?.(store) ?? store;
  const proxy = buildProxyServer({ config, store: used, origin, clock, random: () => 0.5 });
  const logger = options.logs === undefined ? false : { level: 'info', stream: { write: (line: string) => options.logs!.push(JSON.parse(line)) } };
  const admin = buildAdminServer({ origin, logger });
  const { purger } = attachPurge({ config, index, store: used, invalidations: proxy.flow.invalidations, proxyApp: proxy.app, adminApp: admin, clock, ...(options.sliceSize === undefined ? {} : { sliceSize: options.sliceSize }) });
  await proxy.app.listen({ host: '127.0.0.1', port: 0 });
  await admin.listen({ host: '127.0.0.1', port: 0 });
  const url = urlOf(proxy.app);
  const adminUrl = urlOf(admin);
  return {
    url,
    adminUrl,
    flow: proxy.flow,
    store,
    index,
    purger,
    config,
    fetch: (path, init) => fetchText(url + path, init),
    admin: (path, init) => fetchText(adminUrl + path, init),
    close: async () => {
      await Promise.all([proxy.app.close(), admin.close()]);
      await origin.close();
    },
  };
}

function urlOf(app: FastifyInstance): string {
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/** POST /purge with a JSON body (and a token, when given). */
export function postPurge(proxy: PurgeTestProxy, body: unknown, token?: string): Promise<TestResponse> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  return proxy.admin('/purge', { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
}
