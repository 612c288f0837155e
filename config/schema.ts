import { z } from 'zod';
import type { Config } from './types.js';
import { parseDuration, parseSize } from './units.js';

/**
 * The configuration schema: every option, its default and its validation
 * in one place. Unknown keys are errors (a typo must not silently fall
 * back to a default). Parsing `{}` gives the defaults.
 */

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function unit(parse: (input: string | number) => number) {
  return z.union([z.number(), z.string()]).transform((input, ctx) => {
    try {
      return parse(input);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `${(error as Error).message} (got ${JSON.stringify(input)})` });
      return z.NEVER;
    }
  });
}

const size = unit(parseSize);
const duration = unit(parseDuration);

const address = z.string().transform((input, ctx) => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(input.trim());
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || port > 65_535) {
    ctx.addIssue({ code: 'custom', message: `expected HOST:PORT such as 127.0.0.1:8080 or [::1]:8080 (got ${JSON.stringify(input)})` });
    return z.NEVER;
  }
  return { host: match[1] ?? match[2]!, port };
});

const originUrl = z
  .string()
  .nullable()
  .transform((input, ctx) => {
    if (input === null) return null;
    let url: URL;
    try {
      url = new URL(input);
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected an absolute http:// or https:// URL (got ${JSON.stringify(input)})` });
      return z.NEVER;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', message: `the origin must use http: or https:, not ${url.protocol}` });
      return z.NEVER;
    }
    if (url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
      ctx.addIssue({ code: 'custom', message: 'the origin URL must not carry a query, a fragment or credentials' });
      return z.NEVER;
    }
    return url.href;
  });

const headerName = z.string().regex(TOKEN, 'expected an HTTP header name').transform((name) => name.toLowerCase());

const DEFAULT_STRIPPED = [
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

const originSchema = z.strictObject({
  url: originUrl.default(null),
  preserveHost: z.boolean().default(false),
  connections: z.number().int().positive().default(128),
  connectTimeout: duration.default(5_000),
  headersTimeout: duration.default(30_000),
  bodyTimeout: duration.default(30_000),
});

const cacheSchema = z
  .strictObject({
    name: z.string().regex(TOKEN, 'expected a token (letters, digits, -._~ and the like)').default('lacquer'),
    memory: z
      .strictObject({
        maxSize: size.default(256 * 2 ** 20),
        maxObjectSize: size.default(8 * 2 ** 20),
      })
      .prefault({}),
    maxVariants: z.number().int().min(1).max(1024).default(16),
    defaultTtl: duration.default(0),
    negativeTtl: duration.default(0),
    heuristicFraction: z.number().min(0).max(1).default(0.1),
    heuristicMaxTtl: duration.default(86_400_000),
    jitter: z.number().min(0).max(0.5).default(0.1),
    staleWhileRevalidate: duration.default(0),
    staleIfError: duration.default(0),
    hitForMissTtl: duration.default(30_000),
    setCookie: z.enum(['pass', 'strip']).default('pass'),
    honorRequestCacheControl: z.boolean().default(true),
  })
  .superRefine((cache, ctx) => {
    if (cache.memory.maxObjectSize > cache.memory.maxSize) {
      ctx.addIssue({ code: 'custom', path: ['memory', 'maxObjectSize'], message: 'must not be larger than cache.memory.maxSize' });
    }
  });

export const configSchema = z.strictObject({
  listen: address.default({ host: '127.0.0.1', port: 8080 }),
  admin: address.default({ host: '127.0.0.1', port: 8081 }),
  origin: originSchema.prefault({}),
  cache: cacheSchema.prefault({}),
  key: z
    .strictObject({
      query: z.strictObject({ sort: z.boolean().default(true), drop: z.array(z.string()).default([]) }).prefault({}),
      headers: z.array(headerName).default([]),
    })
    .prefault({}),
  request: z.strictObject({ stripHeaders: z.array(headerName).default(DEFAULT_STRIPPED) }).prefault({}),
  tags: z
    .strictObject({
      headers: z.array(headerName).default(['surrogate-key', 'cache-tag']),
      strip: z.boolean().default(true),
    })
    .prefault({}),
  log: z.strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') }).prefault({}),
});

// The schema's output must be exactly the Config every module receives.
type SchemaOutput = z.output<typeof configSchema>;
const _sameShape: [SchemaOutput extends Config ? true : false, Config extends SchemaOutput ? true : false] = [true, true];
void _sameShape;

/** The configuration with every option at its default. */
export function defaults(): Config {
  return configSchema.parse({});
}
