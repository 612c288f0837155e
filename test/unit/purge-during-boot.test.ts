import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaults } from '../../config/schema.js';
import { Purger } from '../../purge/purger.js';
import type { PurgeSpec } from '../../purge/selectors.js';
import { TagIndex } from '../../purge/tag-index.js';
import { Invalidations } from '../../proxy/cache/coalesce.js';
import { TieredStore } from '../../proxy/store/tiered.js';
import { testEntry } from '../helpers/entries.js';
import { tempDir } from '../helpers/tempdir.js';

/**
 * Lacquer serves while the disk tier rebuilds its index at boot. A purge
 * made meanwhile must cover the entries the scan has not reached yet, or
 * the scan would bring purged content back.
 */

const root = tempDir('lacquer-boot-purge-');
let directories = 0;

function tiered(dir: string, index?: TagIndex): TieredStore {
  return new TieredStore({
    memory: { maxSize: 1 << 20, maxObjectSize: 1 << 20 },
    disk: { dir, maxSize: 1 << 24, maxObjectSize: 1 << 20 },
    maxVariants: 4,
    clock: Date.now,
    ...(index === undefined ? {} : { listener: index }),
  });
}

const spec = (fields: Partial<PurgeSpec>): PurgeSpec => ({ urls: [], tags: [], prefixes: [], all: false, mode: 'hard', ...fields });

describe('a purge during the disk tier boot scan', () => {
  const kinds: [string, Partial<PurgeSpec>][] = [
    ['of everything', { all: true }],
    ['by tag', { tags: ['t'] }],
    ['by prefix', { prefixes: ['/p'] }],
    ['by bare path', { urls: ['/p1'] }],
    ['by absolute URL', { urls: ['http://h/p1'] }],
  ];
  it.each(kinds)('%s is not undone when the scan finishes', async (_name, fields) => {
    const dir = join(root, String(directories++));
    const first = tiered(dir);
    await first.ready;
    await first.set(testEntry({ key: 'h/p1', tags: ['t'], body: Buffer.from('old') }));
    await first.close();

    const index = new TagIndex();
    const second = tiered(dir, index);
    const purger = new Purger({ store: second, index, invalidations: new Invalidations(), keyOptions: defaults().key, clock: Date.now });
    const result = await purger.purge(spec(fields), 'admin');
    await second.ready;
    expect(result.purged).toBe(1);
    expect(second.get('h/p1')).toBeUndefined();
    await second.close();
  });
});
