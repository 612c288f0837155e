import { z } from 'zod';
import type { PurgeSpec } from './selectors.js';

/**
 * The POST /purge body, validated: any of urls, tags, prefixes (non-empty
 * lists) and all, plus soft. Anything else, or nothing to purge, is a 400
 * with a message naming the field.
 */

const FIELDS = ['urls', 'tags', 'prefixes', 'all', 'soft'];
/** Enough for any real batch, small enough that one request cannot queue unbounded work. */
export const MAX_LIST = 10_000;

function list(what: string, item: z.ZodString) {
  return z
    .array(item, { error: `expected a list of ${what}` })
    .min(1, { error: `expected at least one of ${what}; leave the field out instead of sending an empty list` })
    .max(MAX_LIST, { error: `expected at most ${MAX_LIST} ${what} per request` });
}

const text = (what: string) => z.string({ error: `expected ${what} as a string` }).min(1, { error: `expected a non-empty ${what}` });
const tag = text('tag').regex(/^[^\s,]+$/, { error: 'a tag has no spaces or commas (they separate tags in Surrogate-Key and Cache-Tag)' });

const bodySchema = z
  .strictObject(
    {
      urls: list('URLs', text('URL')).optional(),
      tags: list('tags', tag).optional(),
      prefixes: list('path prefixes', text('prefix')).optional(),
      all: z.boolean({ error: 'expected true or false' }).optional(),
      soft: z.boolean({ error: 'expected true or false' }).optional(),
    },
    { error: (issue) => (issue.code === 'invalid_type' ? 'expected a JSON object such as {"tags": ["product-42"]}' : undefined) },
  )
  .refine((body) => body.urls !== undefined || body.tags !== undefined || body.prefixes !== undefined || body.all === true, {
    error: 'nothing to purge: give "urls", "tags", "prefixes" or "all": true',
  });

export type BodyVerdict = { readonly kind: 'spec'; readonly spec: PurgeSpec } | { readonly kind: 'invalid'; readonly message: string };

export function parsePurgeBody(raw: string | undefined): BodyVerdict {
  if (raw === undefined || raw.trim() === '') return { kind: 'invalid', message: 'expected a JSON body such as {"tags": ["product-42"]}' };
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (error) {
    return { kind: 'invalid', message: `the body is not valid JSON: ${(error as Error).message}` };
  }
  const parsed = bodySchema.safeParse(json);
  if (!parsed.success) return { kind: 'invalid', message: parsed.error.issues.map(describeIssue).join('; ') };
  const body = parsed.data;
  return {
    kind: 'spec',
    spec: { urls: body.urls ?? [], tags: body.tags ?? [], prefixes: body.prefixes ?? [], all: body.all === true, mode: body.soft === true ? 'soft' : 'hard' },
  };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `unknown field ${JSON.stringify(key)} (expected ${FIELDS.join(', ')})`).join('; ');
  }
  const path = issue.path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('').replace(/^\./, '');
  return path === '' ? issue.message : `${path}: ${issue.message}`;
}
