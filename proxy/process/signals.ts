import { ConfigError } from '../../config/errors.js';
import type { Config } from '../../config/types.js';
import type { DrainReport } from '../main.js';
import type { ReloadPlan } from './reload.js';

/**
 * How one Lacquer process answers signals:
 *
 *   SIGTERM, SIGINT  drain: stop accepting, let in-flight requests finish (and
 *                    purges queued for Redis be published) for up to
 *                    shutdown.drainTimeout, close what is left, exit 0
 *                    (1 if releasing resources failed);
 *   SIGHUP           reload the config file; apply the reloadable fields
 *                    (proxy/process/reload.ts), keep the cache; a config that
 *                    does not validate is rejected, field by field, and the
 *                    running one stays.
 *
 * A supervisor that runs several workers forwards these signals to each, and
 * each behaves as a single process does.
 */
export interface SignalTarget {
  close(): Promise<DrainReport>;
  reload(next: Config): ReloadPlan;
}

export interface SignalOptions {
  /** Reads and validates the config again, as at start (same file, environment and flags); throws ConfigError. */
  readonly loadConfig: () => Config;
  /** One line for the operator (the CLI writes it to stderr). */
  readonly log: (line: string) => void;
  readonly exit: (code: number) => void;
  /** Where to listen; default `process`. */
  readonly signals?: Pick<NodeJS.Process, 'on' | 'off'>;
}

export interface SignalHandlers {
  /** Removes the listeners (tests; a supervisor taking over). */
  dispose(): void;
}

export function handleSignals(target: SignalTarget, options: SignalOptions): SignalHandlers {
  const emitter = options.signals ?? process;
  let stopping = false;

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      options.log(`lacquer: ${signal} received again; already draining`);
      return;
    }
    stopping = true;
    options.log(`lacquer: ${signal} received, draining`);
    target.close().then(
      (report) => {
        const ms = Math.round(report.ms);
        options.log(
          report.cutConnections === 0
            ? `lacquer: drained in ${ms} ms, exiting`
            : `lacquer: drain deadline reached after ${ms} ms; closed ${report.cutConnections} connection(s) still in flight, exiting`,
        );
        options.exit(0);
      },
      (error: unknown) => {
        options.log(`lacquer: error while stopping: ${error instanceof Error ? error.message : String(error)}`);
        options.exit(1);
      },
    );
  };

  const reload = () => {
    if (stopping) return;
    let next: Config;
    try {
      next = options.loadConfig();
    } catch (error) {
      if (!(error instanceof ConfigError)) {
        options.log(`lacquer: config reload failed: ${error instanceof Error ? error.message : String(error)}; the running config stays`);
        return;
      }
      for (const issue of error.issues) options.log(`lacquer: config reload rejected: ${issue.path}: ${issue.message}`);
      options.log('lacquer: the running config stays');
      return;
    }
    const plan = target.reload(next);
    for (const field of plan.needsRestart) options.log(`lacquer: config reload: ${field} changed but takes effect only after a restart; the running value stays`);
    options.log(plan.applied.length === 0 ? 'lacquer: config reloaded, nothing to change' : `lacquer: config reloaded: ${plan.applied.join(', ')}`);
  };

  const onTerm = () => stop('SIGTERM');
  const onInt = () => stop('SIGINT');
  emitter.on('SIGTERM', onTerm);
  emitter.on('SIGINT', onInt);
  emitter.on('SIGHUP', reload);
  return {
    dispose: () => {
      emitter.off('SIGTERM', onTerm);
      emitter.off('SIGINT', onInt);
      emitter.off('SIGHUP', reload);
    },
  };
}
