import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bodyBytes } from '../../proxy/cache/body.js';
import type { DiskChange } from '../../proxy/store/disk.js';
import { claimDirectory } from '../../proxy/store/disk-scan.js';
import { TieredStore } from '../../proxy/store/tiered.js';
import { testEntry } from '../contract/store-contract.js';
import { tempDir } from '../helpers/tempdir.js';

/** Tiered stores of workers sharing one disk directory, in one process, their announcements carried by the test. */

const root = tempDir('lacquer-tiered-shared-disk-');
let dirs = 0;
const open: TieredStore[] = [];
afterEach(async () => {
  for (const store of open.splice(0)) await store.close();
});

async function sharedDir(): Promise<string> {
  const dir = join(root, String(dirs++));
  await claimDirectory(dir);
  return dir;
}

function worker(dir: string, announce: (change: DiskChange) => void): TieredStore {
  const store = new TieredStore({
    memory: { maxSize: 1 << 20, maxObjectSize: 1 << 20 },
    disk: { dir, maxSize: 1 << 20, maxObjectSize: 1 << 20, shared: { lockHolder: process.pid, since: Date.now(), announce } },
    maxVariants: 4,
    // testEntry's fixed time: its entries are fresh.
    clock: () => 1_000_000,
  });
  open.push(store);
  return store;
}

describe('tiered stores of workers sharing a disk tier', () => {
  it("keeps another worker's later copy of a variant whole: its metadata never goes into memory with this worker's bytes", async () => {
    const dir = await sharedDir();
    const announced: DiskChange[] = [];
    const a = worker(dir, (change) => announced.push(change));
    const b = worker(dir, () => undefined);
    await Promise.all([a.ready, b.ready]);
    // Two answers of the same length for one variant, as a changing origin gives two workers missing at once.
    await a.set(testEntry('k', { etag: '"from-a"', body: Buffer.from('body from a') }));
    const fromA = JSON.parse(JSON.stringify(announced.find((change) => change.kind === 'stored'))) as DiskChange & { kind: 'stored' };
    const writing = b.set(testEntry('k', { etag: '"from-b"', body: Buffer.from('body from b') }));
    // a's copy, as if written after b's: it arrives while b is still writing its own, so b's gives way.
    // Write stamps are in microseconds: a copy written a minute later, whenever b's own write is stamped.
    b.disk.applyPeerChange({ ...fromA, record: { ...fromA.record, written: fromA.record.written + 60_000_000 } });
    await writing;

    const [kept] = b.get('k')!;
    expect(kept!.etag).toBe('"from-a"');
    expect((await bodyBytes(kept!.body)).toString()).toBe('body from a');
    // Whatever memory holds for the variant is that same response.
    for (const held of b.memory.peek('k') ?? []) {
      expect({ etag: held.etag, body: (await bodyBytes(held.body)).toString() }).toEqual({ etag: '"from-a"', body: 'body from a' });
    }
  });
});
