import { isIP, isIPv6 } from 'node:net';
import { z } from 'zod';
import type { Config, ListenAddress } from './types.js';
import { DURATION_EXAMPLE, SIZE_EXAMPLE, parseDuration, parseSize } from './units.js';

/**
 * The configuration schema: every option, its default and its validation in
 * one place. Parsing `{}` gives the defaults.
 *
 * Defaults are written the way an operator writes them in proxy.config.yaml
 * ("256MiB", "30s", "127.0.0.1:8080") and go through the same conversion as
 * user input, so the file and the schema cannot disagree about units.
 *
 * Unknown keys are errors: a misspelt option must not silently fall back to
 * its default.
 */

/** tchar from RFC 9110 §5.6.2. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// Node's timers treat anything longer as 1 ms, which would turn a generous timeout into an instant one.
const MAX_TIMER_MS = 2 ** 31 - 1;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const SET_COOKIE = ['pass', 'strip'] as const;

const DEFAULT_STRIPPED_HEADERS = [
  'x-forwarded-host',
  'x-forwarded-server',
  'x-forwarded-scheme',
  'x-forwarded-port',
  'x-forwarded-prefix',
  'x-host',
  'x-original-url',
  'x-original-host',
  'x-rewrite-url',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
];

function failed(ctx: z.core.$RefinementCtx, message: string): never {
  ctx.addIssue({ code: 'custom', message });
  return z.NEVER;
}

function quantity(parse: (input: string | number) => number, example: string, max = Number.MAX_SAFE_INTEGER, min = 0) {
  return z.unknown().transform((input, ctx) => {
    if (typeof input !== 'string' && typeof input !== 'number') return failed(ctx, `expected ${example}`);
    let value: number;
    try {
      value = parse(input);
    } catch (error) {
      return failed(ctx, (error as Error).message);
    }
    if (value > max) return failed(ctx, `must be at most ${max} ms (about ${Math.floor(max / 86_400_000)} days)`);
    if (value < min) return failed(ctx, `must be at least ${min} bytes`);
    return value;
  });
}

const size = () => quantity(parseSize, SIZE_EXAMPLE);
/** A tier's bound: a tier of zero bytes cannot hold anything (turn the disk tier off with `enabled: false`). */
const tierSize = () => quantity(parseSize, SIZE_EXAMPLE, Number.MAX_SAFE_INTEGER, 1);
const duration = () => quantity(parseDuration, DURATION_EXAMPLE);
const timeout = () => quantity(parseDuration, DURATION_EXAMPLE, MAX_TIMER_MS);

function wholeNumber(min: number, max?: number) {
  const expected = max === undefined ? `expected a whole number, at least ${min}` : `expected a whole number from ${min} to ${max}`;
  const schema = z.number({ error: expected }).int({ error: expected }).min(min, { error: expected });
  return max === undefined ? schema : schema.max(max, { error: expected });
}

function fraction(max: number) {
  const expected = `expected a number from 0 to ${max}`;
  return z.number({ error: expected }).min(0, { error: expected }).max(max, { error: expected });
}

const flag = () => z.boolean({ error: 'expected true or false' });

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `expected one of ${values.join(', ')}` });
}

/**
 * A YAML section whose keys are all commented out reads as null; treating it
 * as an empty section spares operators a confusing "expected a mapping".
 */
function section<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (value === null ? undefined : value), schema);
}

function mapping<T extends z.core.$ZodLooseShape>(shape: T) {
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'invalid_type' ? 'expected a mapping of options (indented key: value lines)' : undefined),
  });
}

const headerName = z
  .string({ error: 'expected an HTTP header name' })
  .regex(TOKEN, { error: 'expected an HTTP header name (letters, digits and !#$%&\'*+-.^_`|~)' })
  .transform((name) => name.toLowerCase());

// Lower-casing can make two spellings of one header collide; keep the first.
const headerList = () => z.array(headerName, { error: 'expected a list of header names' }).transform((names) => [...new Set(names)]);

const ADDRESS_EXAMPLE = 'expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080';

function parseAddress(input: string): ListenAddress | string {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(input.trim());
  if (match === null) {
    return (input.match(/:/g)?.length ?? 0) > 1 ? `${ADDRESS_EXAMPLE} (an IPv6 address goes in brackets)` : ADDRESS_EXAMPLE;
  }
  const bracketed = match[1];
  const host = bracketed ?? match[2] ?? '';
  if (host === '') return `${ADDRESS_EXAMPLE}; the host is required (0.0.0.0 listens on every interface)`;
  if (bracketed !== undefined ? !isIPv6(host) : !/^[A-Za-z0-9._-]+$/.test(host)) {
    return `${ADDRESS_EXAMPLE}; "${host}" is not a host name or IP address`;
  }
  const port = match[3] ?? '';
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65_535) return `${ADDRESS_EXAMPLE}; the port must be a whole number from 0 to 65535`;
  return { host, port: Number(port) };
}

const address = () =>
  z.unknown().transform((input, ctx) => {
    const parsed = typeof input === 'string' ? parseAddress(input) : ADDRESS_EXAMPLE;
    return typeof parsed === 'string' ? failed(ctx, parsed) : parsed;
  });

const ORIGIN_EXAMPLE = 'expected an absolute http:// or https:// URL such as http://127.0.0.1:3000, or null for the bundled example origin';

function parseOrigin(input: string): { url: string } | string {
  const text = input.trim();
  // Without this, "localhost:3000" parses as a URL whose scheme is "localhost:".
  if (!/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text)) return ORIGIN_EXAMPLE;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return ORIGIN_EXAMPLE;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `the origin must use http: or https:, not ${url.protocol}`;
  if (url.username !== '' || url.password !== '') return 'the origin URL must not carry credentials (user:password@)';
  // Checked on the text: the URL parser drops an empty "?" or "#" without a trace.
  if (text.includes('?')) return 'the origin URL must not have a query; only a path prefix is allowed';
  if (text.includes('#')) return 'the origin URL must not have a fragment';
  return { url: url.href };
}

const originUrl = () =>
  z.unknown().transform((input, ctx): string | null => {
    if (input === null) return null;
    const parsed = typeof input === 'string' ? parseOrigin(input) : ORIGIN_EXAMPLE;
    return typeof parsed === 'string' ? failed(ctx, parsed) : parsed.url;
  });

/** Bytes in the largest binary unit that divides them, for messages. */
function showSize(bytes: number): string {
  for (const [unit, factor] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes} bytes`;
}

const originSchema = mapping({
  url: originUrl().default(null),
  preserveHost: flag().default(false),
  connections: wholeNumber(1).default(128),
  connectTimeout: timeout().prefault('5s'),
  headersTimeout: timeout().prefault('30s'),
  bodyTimeout: timeout().prefault('30s'),
});

const memorySchema = mapping({
  maxSize: tierSize().prefault('256MiB'),
  maxObjectSize: tierSize().prefault('8MiB'),
});

const diskSchema = mapping({
  enabled: flag().default(true),
  path: z
    .string({ error: 'expected a directory path' })
    .trim()
    .min(1, { error: 'expected a directory path' })
    .default('var/cache'),
  maxSize: tierSize().prefault('1GiB'),
  maxObjectSize: tierSize().prefault('256MiB'),
});

const cacheSchema = mapping({
  name: z
    .string({ error: 'expected a name made of token characters' })
    .regex(TOKEN, { error: 'expected a name made of token characters (letters, digits and !#$%&\'*+-.^_`|~)' })
    .default('lacquer'),
  memory: section(memorySchema.prefault({})),
  disk: section(diskSchema.prefault({})),
  maxVariants: wholeNumber(1, 1024).default(16),
  defaultTtl: duration().prefault(0),
  negativeTtl: duration().prefault(0),
  heuristicFraction: fraction(1).default(0.1),
  heuristicMaxTtl: duration().prefault('1d'),
  jitter: fraction(0.5).default(0.1),
  staleWhileRevalidate: duration().prefault(0),
  staleIfError: duration().prefault('10s'),
  hitForMissTtl: duration().prefault('30s'),
  setCookie: oneOf(SET_COOKIE).default('pass'),
  honorRequestCacheControl: flag().default(true),
}).superRefine((cache, ctx) => {
  const { maxSize, maxObjectSize } = cache.memory;
  if (maxObjectSize > maxSize) {
    ctx.addIssue({
      code: 'custom',
      path: ['memory', 'maxObjectSize'],
      message: `cache.memory.maxObjectSize (${showSize(maxObjectSize)}) must not be larger than cache.memory.maxSize (${showSize(maxSize)})`,
    });
  }
  const disk = cache.disk;
  if (disk.maxObjectSize > disk.maxSize) {
    ctx.addIssue({
      code: 'custom',
      path: ['disk', 'maxObjectSize'],
      message: `cache.disk.maxObjectSize (${showSize(disk.maxObjectSize)}) must not be larger than cache.disk.maxSize (${showSize(disk.maxSize)})`,
    });
  }
  // Memory holds copies of what the disk holds, so anything memory may store must fit on disk.
  if (disk.enabled && disk.maxObjectSize < maxObjectSize) {
    ctx.addIssue({
      code: 'custom',
      path: ['disk', 'maxObjectSize'],
      message: `cache.disk.maxObjectSize (${showSize(disk.maxObjectSize)}) must not be smaller than cache.memory.maxObjectSize (${showSize(maxObjectSize)}) while the disk tier is enabled`,
    });
  }
});

const keySchema = mapping({
  query: section(
    mapping({
      sort: flag().default(true),
      drop: z
        .array(z.string({ error: 'expected a query parameter name' }).min(1, { error: 'expected a query parameter name' }), {
          error: 'expected a list of query parameter names',
        })
        .default(() => []),
    }).prefault({}),
  ),
  headers: headerList().prefault([]),
});

const requestSchema = mapping({
  stripHeaders: headerList().prefault(DEFAULT_STRIPPED_HEADERS),
});

const tagsSchema = mapping({
  headers: headerList().prefault(['surrogate-key', 'cache-tag']),
  strip: flag().default(true),
  maxPerEntry: wholeNumber(1, 65_536).default(256),
});

const purgeToken = z
  .string({ error: 'expected a token of at least 16 visible characters, or null' })
  .regex(/^[\x21-\x7e]{16,}$/, { error: 'expected a token of at least 16 visible ASCII characters without spaces' })
  .nullable();

const CLIENT_EXAMPLE = 'expected an IP address or a CIDR range such as 10.0.0.0/8 or fd00::/8';

const clientRange = z.string({ error: CLIENT_EXAMPLE }).refine((text) => {
  const [ip, bits, extra] = text.split('/');
  const family = isIP(ip ?? '');
  if (family === 0 || extra !== undefined) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}, { error: CLIENT_EXAMPLE });

const purgeSchema = mapping({
  token: purgeToken.default(null),
  allow: z.array(clientRange, { error: 'expected a list of IP addresses or CIDR ranges' }).default(() => []),
  method: flag().default(true),
  tagHeader: headerName.default('surrogate-key'),
  maxBodySize: size().prefault('64KiB'),
});

const logSchema = mapping({
  level: oneOf(LOG_LEVELS).default('info'),
});

const metricsSchema = mapping({
  enabled: flag().default(true),
});

const REDIS_URL_EXAMPLE = 'expected a redis:// or rediss:// URL such as redis://127.0.0.1:6379, or null for no Redis';

function parseRedisUrl(input: string): string {
  const text = input.trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return REDIS_URL_EXAMPLE;
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return `${REDIS_URL_EXAMPLE}; ${url.protocol} is not a Redis scheme`;
  if (url.hostname === '') return `${REDIS_URL_EXAMPLE}; the host is required`;
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) return `${REDIS_URL_EXAMPLE}; the path is a database number (/0 to /15)`;
  return '';
}

const redisUrl = () =>
  z.unknown().transform((input, ctx): string | null => {
    if (input === null) return null;
    if (typeof input !== 'string') return failed(ctx, REDIS_URL_EXAMPLE);
    const problem = parseRedisUrl(input);
    return problem === '' ? input.trim() : failed(ctx, problem);
  });

const optionalText = (what: string) => z.string({ error: `expected ${what}, or null` }).min(1, { error: `expected ${what}, or null` }).nullable();

const redisSchema = mapping({
  url: redisUrl().default(null),
  username: optionalText('a user name').default(null),
  password: optionalText('a password').default(null),
  tls: section(
    mapping({
      ca: optionalText('a PEM file path').default(null),
      cert: optionalText('a PEM file path').default(null),
      key: optionalText('a PEM file path').default(null),
      servername: optionalText('a host name').default(null),
      rejectUnauthorized: flag().default(true),
    }).prefault({}),
  ),
  keyPrefix: z
    .string({ error: 'expected a key prefix such as "lacquer:"' })
    .regex(/^[\x21-\x7e]*$/, { error: 'expected a key prefix of visible ASCII characters without spaces' })
    .default('lacquer:'),
  instanceId: z
    .string({ error: 'expected an instance name of visible ASCII characters, or null' })
    .regex(/^[\x21-\x7e]{1,200}$/, { error: 'expected an instance name of 1 to 200 visible ASCII characters without spaces' })
    .nullable()
    .default(null),
  connectTimeout: timeout().prefault('5s'),
  purge: section(
    mapping({
      retention: wholeNumber(100).default(100_000),
      queueSize: wholeNumber(1).default(10_000),
    }).prefault({}),
  ),
  shared: section(
    mapping({
      enabled: flag().default(false),
      maxObjectSize: size().prefault('1MiB'),
      timeout: timeout().prefault('50ms'),
      lockTtl: timeout().prefault(0),
    }).prefault({}),
  ),
}).superRefine((redis, ctx) => {
  if (redis.url === null) {
    if (redis.shared.enabled) ctx.addIssue({ code: 'custom', path: ['shared', 'enabled'], message: 'redis.shared needs redis.url' });
    return;
  }
  const tls = redis.tls;
  const tlsSet = tls.ca !== null || tls.cert !== null || tls.key !== null || tls.servername !== null || !tls.rejectUnauthorized;
  if (tlsSet && !redis.url.startsWith('rediss:')) {
    ctx.addIssue({ code: 'custom', path: ['tls'], message: 'redis.tls options apply to rediss:// URLs only; use rediss:// to connect with TLS' });
  }
  if ((tls.cert === null) !== (tls.key === null)) {
    ctx.addIssue({ code: 'custom', path: ['tls', tls.cert === null ? 'cert' : 'key'], message: 'redis.tls.cert and redis.tls.key go together' });
  }
});

const WORKERS_EXAMPLE = 'expected a whole number from 1 to 1024, or "auto" (one per available core)';

/** A number, or its spelling in an environment variable or flag ("4"), or "auto". */
const workers = () =>
  z.unknown().transform((input, ctx): number | 'auto' => {
    if (input === 'auto') return 'auto';
    const value = typeof input === 'string' && /^\d+$/.test(input.trim()) ? Number(input.trim()) : input;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 1024) return failed(ctx, WORKERS_EXAMPLE);
    return value;
  });

const limitsSchema = mapping({
  headersTimeout: timeout().prefault('15s'),
  requestTimeout: timeout().prefault('5m'),
}).superRefine((limits, ctx) => {
  // Node refuses a header timeout longer than a (non-zero) request timeout: the headers are part of the request.
  if (limits.requestTimeout > 0 && limits.headersTimeout > limits.requestTimeout) {
    ctx.addIssue({ code: 'custom', path: ['headersTimeout'], message: 'limits.headersTimeout must not be longer than limits.requestTimeout' });
  }
});

const shutdownSchema = mapping({
  drainTimeout: timeout().prefault('10s'),
});

export const configSchema = mapping({
  workers: workers().default(1),
  listen: address().prefault('127.0.0.1:8080'),
  admin: address().prefault('127.0.0.1:8081'),
  origin: section(originSchema.prefault({})),
  cache: section(cacheSchema.prefault({})),
  key: section(keySchema.prefault({})),
  request: section(requestSchema.prefault({})),
  tags: section(tagsSchema.prefault({})),
  purge: section(purgeSchema.prefault({})),
  log: section(logSchema.prefault({})),
  metrics: section(metricsSchema.prefault({})),
  limits: section(limitsSchema.prefault({})),
  shutdown: section(shutdownSchema.prefault({})),
  redis: section(redisSchema.prefault({})),
});

// A compile-time guard: the schema's output is exactly the Config every module receives.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesConfig: Same<z.output<typeof configSchema>, Config> = true;
void schemaMatchesConfig;

/** The configuration with every option at its default (a fresh, mutable object on each call). */
export function defaults(): Config {
  return configSchema.parse({});
}
