import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { RelayedPurge } from '../../purge/purger.js';
import type { DiskChange } from '../store/disk.js';

/**
 * What the primary and its workers say to each other over the cluster's IPC
 * channel (JSON). Questions carry an id; the answer repeats it.
 */

export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** From a worker to the primary. */
export type WorkerMessage =
  /** The worker applies what it is sent from now on (purges, disk changes). */
  | { readonly lq: 'hello' }
  /** The worker listens; its addresses. */
  | { readonly lq: 'up'; readonly proxyUrl: string; readonly adminUrl: string; readonly originUrl: string; readonly exampleOrigin: boolean }
  | { readonly lq: 'disk'; readonly change: DiskChange }
  /** A purge made here, for every other worker; answered with purged. */
  | { readonly lq: 'purge'; readonly id: number; readonly purge: RelayedPurge }
  /** A relayed purge applied. */
  | { readonly lq: 'applied'; readonly id: number }
  /** A scrape of /metrics landed here; answered with scraped. */
  | { readonly lq: 'scrape'; readonly id: number }
  /** This worker's metrics, for a scrape. */
  | { readonly lq: 'metrics'; readonly id: number; readonly metrics: WorkerMetrics };

/** From the primary to a worker. */
export type PrimaryMessage =
  | { readonly lq: 'disk'; readonly change: DiskChange }
  | { readonly lq: 'apply'; readonly id: number; readonly purge: RelayedPurge }
  | { readonly lq: 'purged'; readonly id: number; readonly missed: number }
  | { readonly lq: 'collect'; readonly id: number }
  | { readonly lq: 'scraped'; readonly id: number; readonly text: string };

export function isWorkerMessage(message: unknown): message is WorkerMessage {
  return typeof message === 'object' && message !== null && typeof (message as { lq?: unknown }).lq === 'string';
}

export const isPrimaryMessage = isWorkerMessage as (message: unknown) => message is PrimaryMessage;

/** Environment variables the primary sets for each worker. */
export const WORKER_ENV = {
  /** The worker's slot, 1..N; a replacement takes the slot of the worker it replaces. */
  slot: 'LACQUER_WORKER_SLOT',
  /** Epoch ms when the primary started (the disk tier's boot scan needs it). */
  since: 'LACQUER_WORKERS_SINCE',
} as const;

/** Set to 1 to have each worker name itself in an `x-lacquer-worker: <slot>; pid=<pid>` response header (diagnostics). */
export const WORKER_HEADER_ENV = 'LACQUER_WORKER_HEADER';
