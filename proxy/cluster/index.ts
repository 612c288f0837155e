import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Config } from '../../config/types.js';
import { workerCount } from './backoff.js';
import { runPrimary } from './primary.js';
import { runWorker } from './worker.js';

/**
 * Which part this process plays: one process serving alone (`workers: 1`,
 * the default), the primary of several workers, or one of those workers.
 */
export type Role = 'single' | 'primary' | 'worker';

export function roleOf(config: Config): Role {
  if (cluster.isWorker) return 'worker';
  return workerCount(config.workers, availableParallelism()) > 1 ? 'primary' : 'single';
}

/**
 * Runs the primary or a worker (the CLI calls it for any role but 'single').
 * `reloadConfig` reads the config again as at start, for SIGHUP: a worker
 * runs the same command line with the same environment as its primary.
 */
export function runClustered(role: Exclude<Role, 'single'>, config: Config, file: string | null, reloadConfig: () => Config): Promise<void> {
  if (role === 'worker') return runWorker(config, reloadConfig);
  return runPrimary({ config, file, workers: workerCount(config.workers, availableParallelism()), reloadConfig });
}
