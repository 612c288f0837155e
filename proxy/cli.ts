#!/usr/bin/env node
import { ConfigError } from '../config/errors.js';
import { helpText, loadConfig } from '../config/load.js';
import { roleOf, runClustered } from './cluster/index.js';
import { startLacquer, type RunningLacquer } from './main.js';
import { handleSignals } from './process/signals.js';

/**
 * The `lacquer` command: load and validate the config (exit 2 on a bad
 * one), start, print where to look, and drain on SIGTERM/SIGINT.
 */

const EXIT_CONFIG = 2;
const EXIT_STARTUP = 1;

async function run(): Promise<void> {
  const loadOptions = { argv: process.argv.slice(2), env: process.env, cwd: process.cwd() };
  let loaded;
  try {
    loaded = loadConfig(loadOptions);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.format()}\n`);
      process.exit(EXIT_CONFIG);
    }
    throw error;
  }
  if (loaded.help) {
    process.stdout.write(helpText());
    return;
  }

  // workers: N > 1 or auto: this process is the primary, or one of its workers (proxy/cluster/).
  const role = roleOf(loaded.config);
  if (role !== 'single') return runClustered(role, loaded.config, loaded.file, () => loadConfig(loadOptions).config);

  // Until handleSignals is in place (start may wait for the disk index and Redis), SIGHUP must not end the process.
  const ignoreWhileStarting = (): void => undefined;
  process.on('SIGHUP', ignoreWhileStarting);
  let running: RunningLacquer;
  try {
    running = await startLacquer(loaded.config);
  } catch (error) {
    process.stderr.write(`lacquer: could not start: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(EXIT_STARTUP);
  }

  if (loaded.config.log.level !== 'silent') printBanner(running, loaded.file);

  process.off('SIGHUP', ignoreWhileStarting);
  handleSignals(running, {
    loadConfig: () => loadConfig(loadOptions).config,
    log: (line) => process.stderr.write(`${line}\n`),
    exit: (code) => process.exit(code),
  });
}

function printBanner(running: RunningLacquer, file: string | null): void {
  const lines = [
    `Lacquer is listening on ${running.proxyUrl}`,
    `  origin: ${running.originUrl}${running.exampleOrigin ? ' (the bundled example origin; set --origin to use your own)' : ''}`,
    `  admin:  ${running.adminUrl}  (GET /healthz, /readyz, /metrics, /explain?url=…)`,
    `  config: ${file ?? 'built-in defaults'}`,
  ];
  if (running.exampleOrigin) {
    lines.push(
      'Try:',
      `  curl -i ${running.proxyUrl}/fresh     # run it twice: the second answer says "Cache-Status: lacquer; hit"`,
      `  curl -i ${running.proxyUrl}/swr       # stale-while-revalidate after 5 s`,
      `  curl -i ${running.proxyUrl}/           # the list of example endpoints`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

process.on('unhandledRejection', (reason) => {
  // Never expected: every origin and store failure is answered where it happens. Log loudly, keep serving.
  process.stderr.write(`lacquer: unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}\n`);
});

void run();
