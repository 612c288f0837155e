import cluster from 'node:cluster';
import type { Config } from '../../config/types.js';
import { startLacquer, type RunningLacquer } from '../main.js';
import { PrimaryLink } from './link.js';
import { WORKER_ENV, WORKER_HEADER_ENV } from './messages.js';

/**
 * One worker process: Lacquer as in single-process mode, linked to the
 * primary. It drains on SIGTERM or SIGINT (RunningLacquer.close) and exits
 * 0. If the primary dies, Node's cluster ends the worker at once.
 */
export async function runWorker(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const slot = Number(env[WORKER_ENV.slot] ?? 0);
  const since = Number(env[WORKER_ENV.since] ?? Date.now());
  const say = (message: string) => process.stderr.write(`lacquer worker ${slot}: ${message}\n`);
  const link = new PrimaryLink({
    slot,
    since,
    nameInResponses: env[WORKER_HEADER_ENV] === '1',
    log: (message, error) => say(error === undefined ? message : `${message}: ${error instanceof Error ? error.message : String(error)}`),
  });

  // A send to a primary that died fails here rather than as an uncaught error; Node's cluster
  // then ends the worker at once on 'disconnect', so a dead primary leaves no orphan.
  cluster.worker?.on('error', (error: Error) => say(`channel to the primary: ${error.message}`));

  let running: RunningLacquer;
  try {
    running = await startLacquer(config, { worker: link });
  } catch (error) {
    say(`could not start: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  }
  link.up({ proxyUrl: running.proxyUrl, adminUrl: running.adminUrl, originUrl: running.originUrl, exampleOrigin: running.exampleOrigin });

  let stopping = false;
  const stop = (why: string) => {
    if (stopping) return;
    stopping = true;
    if (config.log.level !== 'silent') say(`${why}, draining`);
    running.close().then(
      () => process.exit(0),
      (error: unknown) => {
        say(`error while stopping: ${String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM received'));
  process.on('SIGINT', () => stop('SIGINT received'));
  // The primary forwards SIGHUP; without a handler it would end the worker. Reloading is joined here later.
  process.on('SIGHUP', () => say('SIGHUP received; a worker reloads nothing yet'));
}
