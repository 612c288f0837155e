import cluster from 'node:cluster';
import type { Config } from '../../config/types.js';
import { startLacquer, type RunningLacquer } from '../main.js';
import { handleSignals } from '../process/signals.js';
import { PrimaryLink } from './link.js';
import { WORKER_ENV, WORKER_HEADER_ENV } from './messages.js';

/**
 * One worker process: Lacquer as in single-process mode, linked to the
 * primary, answering the signals the primary forwards as a single process
 * does (proxy/process/signals.ts): SIGTERM/SIGINT drain within
 * shutdown.drainTimeout and exit 0, SIGHUP reloads the config. If the
 * primary dies, Node's cluster ends the worker at once.
 */
export async function runWorker(config: Config, reloadConfig: () => Config, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  // Until the handlers below are in place (start may wait for the disk index and Redis), a SIGHUP must not end the
  // worker as it would by default: the config it is starting with was read just now.
  const ignoreWhileStarting = (): void => undefined;
  process.on('SIGHUP', ignoreWhileStarting);
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

  process.off('SIGHUP', ignoreWhileStarting);
  handleSignals(running, {
    loadConfig: reloadConfig,
    log: (line) => say(line.replace(/^lacquer: /, '')),
    exit: (code) => process.exit(code),
  });
}
