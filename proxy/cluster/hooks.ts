import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Purger } from '../../purge/purger.js';
import type { DiskSharing, DiskStore } from '../store/disk.js';

/** What the composition root (main.ts) hands a worker's link to the primary, and takes from it. */
export interface WorkerHooks {
  /** The disk tier is shared with the other workers. */
  readonly diskSharing: DiskSharing;
  /**
   * Responses carry this worker's name (a diagnostic header set in a Fastify
   * hook): every request then takes the general path, which runs the hooks.
   */
  readonly namesResponses: boolean;
  /** Answers /metrics for every worker instead of this process alone. */
  scrape(): Promise<string>;
  /** Called once every part exists, before the listeners start. */
  attach(parts: WorkerParts): void;
}

export interface WorkerParts {
  readonly purger: Purger;
  /** Undefined when metrics are disabled. */
  readonly registry: Registry | undefined;
  /** The disk tier, when enabled. */
  readonly disk: DiskStore | undefined;
  readonly proxyApp: FastifyInstance;
  readonly adminApp: FastifyInstance;
}
