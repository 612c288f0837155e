import { afterEach } from 'vitest';
import { TestClock } from './clock.js';
import { startOrigin, type OriginHandler, type TestOrigin } from './origin.js';
import { startProxy, type TestProxy, type TestProxyOptions } from './proxy.js';

/**
 * The usual integration test setting: a counting origin and a proxy in front
 * of it, started per test and closed after each one.
 */
export interface Rig {
  /** Starts the origin with `handler` and a proxy in front of it. */
  start(handler: OriginHandler, options?: TestProxyOptions): Promise<TestProxy>;
  /** Starts only the origin, for a proxy the test runs itself (a CLI child, say). */
  startOriginOnly(handler: OriginHandler): Promise<TestOrigin>;
  /** Starts only a proxy, in front of an origin the test runs itself (or none at all). */
  startProxyTo(originUrl: string, options?: TestProxyOptions): Promise<TestProxy>;
  /** The origin of the running test (throws before `start`). */
  readonly origin: TestOrigin;
  /** The proxy of the running test (throws before `start`). */
  readonly proxy: TestProxy;
  /** The clock origin and proxy share, when the rig was made with `testClock`; new for each test. */
  readonly clock: TestClock;
}

export interface RigOptions {
  /** Give origin and proxy one TestClock that the test moves by hand. */
  readonly testClock?: boolean;
}

/** Call at the top level of a test file: registers the cleanup and answers the rig. */
export function useRig(options: RigOptions = {}): Rig {
  let origin: TestOrigin | undefined;
  let proxy: TestProxy | undefined;
  let clock = new TestClock();

  afterEach(async () => {
    await proxy?.close();
    await origin?.close();
    proxy = undefined;
    origin = undefined;
  });

  return {
    async start(handler, proxyOptions = {}) {
      let shared = proxyOptions.clock;
      if (options.testClock === true) {
        clock = new TestClock();
        shared = clock.now;
      }
      origin = await startOrigin(handler, shared === undefined ? {} : { clock: shared });
      proxy = await startProxy(origin.url, shared === undefined ? proxyOptions : { clock: shared, ...proxyOptions });
      return proxy;
    },
    async startOriginOnly(handler) {
      origin = await startOrigin(handler);
      return origin;
    },
    async startProxyTo(originUrl, proxyOptions = {}) {
      proxy = await startProxy(originUrl, proxyOptions);
      return proxy;
    },
    get origin() {
      if (origin === undefined) throw new Error('the rig has not been started in this test');
      return origin;
    },
    get proxy() {
      if (proxy === undefined) throw new Error('the rig has not been started in this test');
      return proxy;
    },
    get clock() {
      return clock;
    },
  };
}
