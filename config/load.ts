import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import type { ZodError } from 'zod';
import { ConfigError, type ConfigIssue } from './errors.js';
import { configSchema } from './schema.js';
import type { Config } from './types.js';

/**
 * Loading: defaults < the YAML file < environment < command-line flags,
 * then validation, then a deep freeze. Overrides are applied to the raw
 * document before validation, so a bad value from any source is reported
 * against the field it sets.
 */

export interface LoadOptions {
  argv?: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface LoadedConfig {
  readonly config: Config;
  /** The file that was read, or null when none was. */
  readonly file: string | null;
  /** `--help` was asked for; nothing else was validated. */
  readonly help: boolean;
}

const DEFAULT_FILE = 'proxy.config.yaml';

/** Each override: the flag, the environment variable and the field they set. */
const OVERRIDES = [
  { flag: 'listen', env: 'LACQUER_LISTEN', path: ['listen'] },
  { flag: 'origin', env: 'LACQUER_ORIGIN', path: ['origin', 'url'] },
  { flag: 'admin', env: 'LACQUER_ADMIN', path: ['admin'] },
  { flag: undefined, env: 'LACQUER_LOG_LEVEL', path: ['log', 'level'] },
] as const;

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? {};
  const cwd = options.cwd ?? process.cwd();
  const flags = parseFlags(options.argv ?? []);
  if (flags.help === true) return { config: deepFreeze(configSchema.parse({})), file: null, help: true };

  const named = flags.config ?? env['LACQUER_CONFIG'];
  const file = resolve(cwd, named ?? DEFAULT_FILE);
  let raw: Record<string, unknown> = {};
  let readFile: string | null = null;
  if (existsSync(file)) {
    raw = readYaml(file);
    readFile = file;
  } else if (named !== undefined) {
    throw new ConfigError([{ path: named, message: 'config file not found' }]);
  }

  for (const override of OVERRIDES) {
    const fromEnv = env[override.env];
    if (fromEnv !== undefined && fromEnv !== '') setPath(raw, override.path, fromEnv);
    const fromFlag = override.flag === undefined ? undefined : flags[override.flag];
    if (fromFlag !== undefined) setPath(raw, override.path, fromFlag);
  }

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(issuesOf(parsed.error));
  return { config: deepFreeze(parsed.data), file: readFile, help: false };
}

interface Flags {
  config?: string;
  listen?: string;
  origin?: string;
  admin?: string;
  help?: boolean;
}

function parseFlags(argv: string[]): Flags {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        listen: { type: 'string' },
        origin: { type: 'string' },
        admin: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    if (positionals.length > 0) throw new ConfigError([{ path: positionals[0]!, message: 'unexpected argument (see --help)' }]);
    return values;
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const message = (error as Error).message;
    const flag = /'(-{1,2}[^']+)'/.exec(message)?.[1] ?? 'arguments';
    throw new ConfigError([{ path: flag, message: `${message.replace(/\. To specify.*$/s, '')} (see --help)` }]);
  }
}

function readYaml(file: string): Record<string, unknown> {
  const document = parseDocument(readFileSync(file, 'utf8'));
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => {
        const at = error.linePos?.[0];
        return { path: at === undefined ? file : `${file}:${at.line}:${at.col}`, message: error.message.split('\n')[0]! };
      }),
    );
  }
  const content: unknown = document.toJS();
  if (content === null || content === undefined) return {};
  if (typeof content !== 'object' || Array.isArray(content)) throw new ConfigError([{ path: file, message: 'expected a mapping of options at the top level' }]);
  return content as Record<string, unknown>;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function issuesOf(error: ZodError): ConfigIssue[] {
  return error.issues.flatMap((issue) => {
    const path = dotted(issue.path);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: path === '' ? key : `${path}.${key}`, message: 'unknown option' }));
    }
    return [{ path: path === '' ? '(top level)' : path, message: issue.message }];
  });
}

function dotted(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

export function helpText(): string {
  return `Usage: lacquer [options]

A caching HTTP reverse proxy (RFC 9111).

Options:
  -c, --config FILE       YAML config file (default: ./${DEFAULT_FILE} when present)
      --listen HOST:PORT  where the proxy listens (default: 127.0.0.1:8080)
      --origin URL        the origin to cache (default: the bundled example origin)
      --admin HOST:PORT   the admin listener for /healthz and /readyz (default: 127.0.0.1:8081)
  -h, --help              show this text

Environment:
  LACQUER_CONFIG      same as --config
  LACQUER_LISTEN      same as --listen
  LACQUER_ORIGIN      same as --origin
  LACQUER_ADMIN       same as --admin
  LACQUER_LOG_LEVEL   fatal | error | warn | info | debug | trace | silent (default: info)

Precedence, lowest first: built-in defaults, the config file, environment
variables, command-line flags. Every option, with its default, is listed in
${DEFAULT_FILE}. Sizes take units (256MiB, 10GB); durations take units
(500ms, 30s, 5m, 1d), and a bare number is seconds.

A bad config prints the field and the reason and exits with status 2.
`;
}
