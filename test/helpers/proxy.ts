import type { AddressInfo } from 'node:net';
import { request as undiciRequest } from 'undici';
import { defaults } from '../../config/schema.js';
import type { Config } from '../../config/types.js';
import type { Flow } from '../../proxy/flow.js';
import { buildProxyServer } from '../../proxy/server.js';
import { MemoryStore } from '../../proxy/store/memory.js';
import { TieredStore } from '../../proxy/store/tiered.js';
import { Origin } from '../../proxy/upstream/origin.js';

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };

export interface TestProxy {
  readonly url: string;
  readonly flow: Flow;
  readonly store: MemoryStore | TieredStore;
  readonly config: Config;
  fetch(path: string, init?: { method?: string; headers?: Record<string, string>; body?: string }): Promise<TestResponse>;
  close(): Promise<void>;
}

export interface TestResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

export interface TestProxyOptions {
  clock?: () => number;
  random?: () => number;
  config?: DeepPartial<Config>;
  errors?: unknown[];
  /** A directory for a tiered store (memory over disk, sized by config.cache.disk); default: a memory store only. */
  cacheDir?: string;
  /** With cacheDir: milliseconds between claims of a directory another holder keeps (default 5 s). */
  claimRetryMs?: number;
  /** Lines the store logs (skipped files and the like). */
  logs?: string[];
}

/** The proxy on a loopback port in front of `originUrl`, with a memory store and the given clock. */
export async function startProxy(originUrl: string, options: TestProxyOptions = {}): Promise<TestProxy> {
  const config = merge(defaults(), { ...options.config, origin: { ...options.config?.origin, url: originUrl } }) as Config;
  const clock = options.clock ?? Date.now;
  const store =
    options.cacheDir === undefined
      ? new MemoryStore({ maxSize: config.cache.memory.maxSize, maxVariants: config.cache.maxVariants, clock })
      : new TieredStore({
          memory: config.cache.memory,
          disk: { dir: options.cacheDir, maxSize: config.cache.disk.maxSize, maxObjectSize: config.cache.disk.maxObjectSize, ...(options.claimRetryMs !== undefined && { claimRetryMs: options.claimRetryMs }) },
          maxVariants: config.cache.maxVariants,
          clock,
          log: (line) => options.logs?.push(line),
          onError: (error) => options.errors?.push(error),
        });
  const origin = new Origin(originUrl, config.origin);
  const { app, flow } = buildProxyServer({
    config,
    store,
    origin,
    clock,
    random: options.random ?? (() => 0.5),
    onError: (error) => options.errors?.push(error),
  });
  if (store instanceof TieredStore) {
    // As main.ts wires it.
    const since = flow.invalidations.stamp();
    store.disk.keepFoundIf((key, tags) => flow.invalidations.mayStore(key, since, tags));
  }
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    flow,
    store,
    config,
    fetch: (path, init = {}) => fetchText(url + path, init),
    close: async () => {
      // A streamed answer can reach the client in full a moment before the server sees it end; close its connection once it is idle.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 20);
      await app.close().finally(() => clearInterval(sweep));
      await origin.close();
      await store.close();
    },
  };
}

/** A plain HTTP request with only the headers given (no user agent, no decompression). */
export async function fetchText(url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<TestResponse> {
  const response = await undiciRequest(url, { method: (init.method ?? 'GET') as 'GET', headers: init.headers ?? {}, body: init.body ?? null });
  const body = await response.body.text();
  return { status: response.statusCode, headers: response.headers, body };
}

function merge(base: unknown, override: unknown): unknown {
  if (override === undefined) return base;
  if (typeof base !== 'object' || base === null || Array.isArray(base) || typeof override !== 'object' || override === null || Array.isArray(override)) {
    return override;
  }
  const result: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [name, value] of Object.entries(override)) result[name] = merge(result[name], value);
  return result;
}
