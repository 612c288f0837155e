import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from './errors.js';
import { configSchema, defaults } from './schema.js';
import type { Config } from './types.js';

/**
 * Loading: defaults < the YAML file < environment < command-line flags, then
 * validation, then a deep freeze. Overrides are written into the raw document
 * before validation, so a bad value from any source is reported against the
 * field it sets (`origin.url`, not `LACQUER_ORIGIN`).
 */

export interface LoadOptions {
  /** Command-line arguments without the node and script paths (`process.argv.slice(2)`). Default []. */
  argv?: string[];
  /** Default `process.env`. */
  env?: NodeJS.ProcessEnv;
  /** Where a relative config file name is resolved. Default `process.cwd()`. */
  cwd?: string;
}

export interface LoadedConfig {
  readonly config: Config;
  /** The absolute path of the file that was read, or null when none was. */
  readonly file: string | null;
  /** `--help` was given: the caller prints `helpText()`; `config` holds the defaults and nothing was read. */
  readonly help: boolean;
}

const DEFAULT_FILE = 'proxy.config.yaml';

/** Each override: the flag, the environment variable and the field they set. */
const OVERRIDES: readonly { flag?: 'listen' | 'origin' | 'admin' | 'cache-dir' | 'workers'; env: string; path: readonly string[] }[] = [
  { flag: 'listen', env: 'LACQUER_LISTEN', path: ['listen'] },
  { flag: 'origin', env: 'LACQUER_ORIGIN', path: ['origin', 'url'] },
  { flag: 'admin', env: 'LACQUER_ADMIN', path: ['admin'] },
  { env: 'LACQUER_LOG_LEVEL', path: ['log', 'level'] },
  { env: 'LACQUER_PURGE_TOKEN', path: ['purge', 'token'] },
  { flag: 'cache-dir', env: 'LACQUER_CACHE_DIR', path: ['cache', 'disk', 'path'] },
  { env: 'LACQUER_REDIS_URL', path: ['redis', 'url'] },
  { env: 'LACQUER_REDIS_PASSWORD', path: ['redis', 'password'] },
  { flag: 'workers', env: 'LACQUER_WORKERS', path: ['workers'] },
];

export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const flags = parseFlags(options.argv ?? []);
  if (flags.help === true) return { config: deepFreeze(defaults()), file: null, help: true };

  const source = configFileSource(flags, env);
  const file = resolve(cwd, source?.name ?? DEFAULT_FILE);
  const text = readConfigFile(file, source?.by);
  const raw = text === null ? {} : parseYaml(text, file);

  for (const override of OVERRIDES) {
    // An empty variable is how shells and compose files spell "unset".
    const fromEnv = env[override.env];
    if (fromEnv !== undefined && fromEnv !== '') setPath(raw, override.path, fromEnv);
    const fromFlag = override.flag === undefined ? undefined : flags[override.flag];
    if (fromFlag !== undefined) setPath(raw, override.path, fromFlag);
  }

  const parsed = configSchema.safeParse(raw, { reportInput: true });
  if (!parsed.success) throw new ConfigError(issuesOf(parsed.error));
  return { config: deepFreeze(parsed.data), file: text === null ? null : file, help: false };
}

interface Flags {
  config?: string;
  listen?: string;
  origin?: string;
  admin?: string;
  'cache-dir'?: string;
  workers?: string;
  help?: boolean;
}

function parseFlags(argv: string[]): Flags {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        listen: { type: 'string' },
        origin: { type: 'string' },
        admin: { type: 'string' },
        'cache-dir': { type: 'string' },
        workers: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw new ConfigError([flagIssue(error)]);
  }
  const [positional] = parsed.positionals;
  if (positional !== undefined) {
    throw new ConfigError([{ path: positional, message: 'unexpected argument; lacquer takes only options (see --help)' }]);
  }
  return parsed.values;
}

/** parseArgs messages carry advice about positionals that does not apply here; say it in our own words. */
function flagIssue(error: unknown): ConfigIssue {
  const { code, message } = error as { code?: string; message?: string };
  // Messages quote the flag as '--origin', '-c, --config <value>' or '-x'; report the long name when there is one.
  const flag = /'(?:-\w, )?(-{1,2}[^' ]+)/.exec(message ?? '')?.[1] ?? 'arguments';
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return { path: flag, message: 'unknown option (see --help)' };
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
    const text = message ?? '';
    if (text.includes('does not take an argument')) return { path: flag, message: 'takes no value (see --help)' };
    if (text.includes('ambiguous')) return { path: flag, message: `needs a value; write ${flag}=VALUE for a value that starts with "-"` };
    return { path: flag, message: 'needs a value (see --help)' };
  }
  return { path: flag, message: `${(message ?? String(error)).split('. ')[0]} (see --help)` };
}

function configFileSource(flags: Flags, env: NodeJS.ProcessEnv): { name: string; by: string } | undefined {
  if (flags.config !== undefined) {
    if (flags.config === '') throw new ConfigError([{ path: '--config', message: 'needs a file name' }]);
    return { name: flags.config, by: '--config' };
  }
  const fromEnv = env['LACQUER_CONFIG'];
  return fromEnv === undefined || fromEnv === '' ? undefined : { name: fromEnv, by: 'LACQUER_CONFIG' };
}

/** The file's text; null when it is the default file and absent (then every option takes its default). */
function readConfigFile(file: string, namedBy: string | undefined): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && namedBy === undefined) return null;
    if (code === 'ENOENT') throw new ConfigError([{ path: file, message: `config file not found (named by ${namedBy})` }]);
    if (code === 'EISDIR') throw new ConfigError([{ path: file, message: 'is a directory, not a config file' }]);
    throw new ConfigError([{ path: file, message: `cannot read the config file: ${(error as Error).message}` }]);
  }
}

function parseYaml(text: string, file: string): Record<string, unknown> {
  const document = parseDocument(text, { prettyErrors: true });
  if (document.errors.length > 0) {
    throw new ConfigError(
      document.errors.map((error) => {
        const at = error.linePos?.[0];
        // The position goes in the path, as file:line:col, which editors and terminals can open.
        const message = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
        return { path: at === undefined ? file : `${file}:${at.line}:${at.col}`, message: `YAML syntax error: ${message}` };
      }),
    );
  }
  let content: unknown;
  try {
    content = document.toJS();
  } catch (error) {
    // Reached by aliases that cannot be resolved or expand too far.
    throw new ConfigError([{ path: file, message: `YAML error: ${(error as Error).message}` }]);
  }
  if (content === null || content === undefined) return {};
  if (typeof content !== 'object' || Array.isArray(content)) {
    throw new ConfigError([{ path: file, message: 'expected a mapping of options (key: value lines) at the top level' }]);
  }
  return content as Record<string, unknown>;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    // A non-mapping here (or a null, empty section) is replaced: the override wins over whatever the file said.
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function issuesOf(error: z.ZodError): ConfigIssue[] {
  return error.issues.flatMap((issue) => {
    const path = dotted(issue.path);
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => ({ path: path === '' ? key : `${path}.${key}`, message: 'unknown option' }));
    }
    // A secret is never echoed, even when it is the value at fault (it would end up in logs).
    const got = SECRET_PATHS.has(path) ? secretShape(issue.input) : describe(issue.input, issue.code === 'invalid_type');
    return [{ path: path === '' ? '(top level)' : path, message: got === undefined ? issue.message : `${issue.message} (got ${got})` }];
  });
}

const SECRET_PATHS = new Set(['purge.token']);

/** What may be said of a secret: its length and whether it has spaces or a line break. */
function secretShape(input: unknown): string {
  if (typeof input !== 'string') return `a ${input === null ? 'null' : typeof input}`;
  const notes = [/[\r\n]/.test(input) ? 'a line break' : '', /[ \t]/.test(input) ? 'a space' : ''].filter((note) => note !== '');
  return `${input.length} characters${notes.length === 0 ? '' : `, with ${notes.join(' and ')}`}`;
}

/** The offending value for a message; mappings and lists are named only for type errors, where they are the mistake. */
function describe(input: unknown, typeError: boolean): string | undefined {
  if (input === null || typeof input === 'boolean' || typeof input === 'number') return String(input);
  // Credentials in a URL (user:password@) are not repeated.
  if (typeof input === 'string') return JSON.stringify(clip(input.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1***@')));
  if (!typeError) return undefined;
  if (Array.isArray(input)) return 'a list';
  if (typeof input === 'object') return 'a mapping';
  return undefined;
}

function clip(text: string): string {
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function dotted(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
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
  const d = defaults();
  const listen = `${d.listen.host}:${d.listen.port}`;
  const admin = `${d.admin.host}:${d.admin.port}`;
  return `Usage: lacquer [options]

A caching HTTP reverse proxy (RFC 9111).

Options:
  -c, --config FILE       YAML config file (default: ./${DEFAULT_FILE} if it exists,
                          otherwise built-in defaults); a named file must exist
      --listen HOST:PORT  where the proxy listens (default: ${listen})
      --origin URL        the http:// or https:// origin to cache, optionally with a
                          path prefix (default: the bundled example origin)
      --admin HOST:PORT   the admin listener, /healthz and /readyz (default: ${admin})
      --cache-dir DIR     the disk tier's directory (default: ${d.cache.disk.path}, relative
                          to the working directory)
      --workers N|auto    processes serving requests: 1 (default) runs one process;
                          more, or auto (one per core), runs a primary and workers
  -h, --help              print this text and exit

Environment:
  LACQUER_CONFIG      same as --config
  LACQUER_LISTEN      same as --listen        (sets listen)
  LACQUER_ORIGIN      same as --origin        (sets origin.url)
  LACQUER_ADMIN       same as --admin         (sets admin)
  LACQUER_CACHE_DIR   same as --cache-dir     (sets cache.disk.path)
  LACQUER_WORKERS     same as --workers       (sets workers)
  LACQUER_LOG_LEVEL   sets log.level: fatal, error, warn, info, debug, trace or
                      silent (default: ${d.log.level})
  LACQUER_PURGE_TOKEN sets purge.token, the bearer token purges must carry
  LACQUER_REDIS_URL   sets redis.url (redis:// or rediss://): purges reach every
                      instance sharing that Redis
  LACQUER_REDIS_PASSWORD sets redis.password
  An empty variable counts as unset.

Precedence, lowest first: built-in defaults, the config file, environment
variables, command-line flags. --config wins over LACQUER_CONFIG.

Every option, with its default and a comment, is listed in ${DEFAULT_FILE}.
Unknown options are errors. Sizes take units (512KiB, 256MiB, 10GB; a bare
number is bytes); durations take units (500ms, 30s, 5m, 2h, 1d; a bare number
is seconds).

A bad config prints one line per problem, naming the field and the reason, and
exits with status 2.
`;
}
