import { unlink } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { isFileBody, type BodyOwner, type FileBody } from '../cache/body.js';
import { entryMeta, withBody, type Entry } from '../cache/entry.js';
import { idOf, newId, pathOf } from './disk-files.js';
import { encodeMeta, type EntryMeta, type MetaRecord } from './disk-format.js';
import { DirectoryClaim } from './disk-claim.js';
import { claimRetryMs, type LockInfo } from './disk-lock.js';
import { scanDirectory, unlockDirectory, type ScanHost } from './disk-scan.js';
import { DiskBodyWriter } from './disk-writer.js';
import { DiskWriteThread, type StartWriteThread } from './disk-write-thread.js';
import type { BodyWriter, RemovalReason, StoreListener, StreamingStore } from './store.js';

export interface DiskStoreOptions {
  /** The cache directory; created if missing. A non-empty directory must carry Lacquer's marker file. */
  dir: string;
  /** Bytes the tier may hold, counting every entry's `size`. */
  maxSize: number;
  /** Largest body stored, in bytes. */
  maxObjectSize: number;
  /** Most variants kept per key; storing one more drops the oldest. */
  maxVariants: number;
  /** Current time in epoch ms; judges deleteAt. */
  clock: () => number;
  listener?: StoreListener;
  /** One line for each file skipped and removed at boot, and other notable events. */
  log?: (message: string) => void;
  /** Failures that lose no data but are worth reporting (unreadable directory, failed unlink). */
  onError?: (error: unknown, context: string) => void;
  /** Set when several processes of one machine (workers) share the directory; see DiskSharing. */
  shared?: DiskSharing;
  /** Milliseconds between claims of a directory another holder keeps (tests shorten it). Default 5 s. */
  claimRetryMs?: number;
  /** Starts the thread that writes whole entries; only tests replace it (a thread that cannot start, or dies mid-job). */
  startWriteThread?: StartWriteThread;
}

/**
 * How workers share one directory. Each keeps a full index of it: a worker
 * announces every entry it writes and every one it drops, and applies what
 * the others announce, so an entry written by one is a hit on all and every
 * index counts the whole directory's bytes (eviction keeps it under maxSize).
 * Files are never rewritten in place (random names, rename into place), so
 * two workers never write the same file.
 *
 * Announcing rather than looking for a file on an index miss: files are
 * named by random ids, not by key, so a miss cannot name the file to look
 * for; and eviction needs each index to count every file, not just its own.
 */
export interface DiskSharing {
  /** The pid that holds the directory's lock for all workers (the primary). */
  readonly lockHolder: number;
  /**
   * Epoch ms when the workers' primary started. A temporary or unreferenced
   * file last modified before it is left over from an earlier run; a newer one
   * may be another worker's write in progress, so the boot scan leaves it.
   */
  readonly since: number;
  /** Carries a change this process made to the other workers. */
  announce(change: DiskChange): void;
}

/** A change to the directory, as workers tell each other. */
export type DiskChange =
  | { readonly kind: 'stored'; readonly metaId: string; readonly record: MetaRecord }
  | { readonly kind: 'removed'; readonly key: string; readonly variant: string; readonly metaId: string };

/**
 * One stored variant as the index holds it. `entry` is either the index's
 * own copy, its body the file, or the very object the memory tier holds
 * (its body the bytes in memory): a variant in both tiers keeps its
 * metadata once. The memory tier hands such an object back (unshare) when
 * it lets go of it, and the index then makes its own copy, so the index
 * never keeps bytes alive that the memory tier has dropped.
 */
interface Stored {
  readonly entry: Entry;
  readonly metaId: string;
  readonly bodyId: string;
  readonly written: number;
  /** The body file's CRC-32 as a signed 32-bit integer (`| 0`): V8 keeps that as a small integer, where values past 2^31 would each be boxed. */
  readonly crc: number;
  /** The move count (DiskStore #moves) when the key last went to the back of the LRU order; see KeyRecord. */
  moved: number;
}

/**
 * A key's variants in the index. Most keys have one: then the record is
 * that variant's Stored itself, with no array and no wrapper around it
 * (about 90 bytes less per key). Several are kept newest first.
 */
type KeyRecord = Stored | { readonly stored: readonly Stored[]; moved: number };

/** The variants of a record, newest first (an array made for a single variant: not for the hit path). */
function variantsOf(record: KeyRecord): readonly Stored[] {
  return 'stored' in record ? record.stored : [record];
}

function countOf(record: KeyRecord): number {
  return 'stored' in record ? record.stored.length : 1;
}

const NO_VARIANTS: readonly Stored[] = Object.freeze([]);

/** A removed body file stays a moment, so a request already streaming it finishes. */
const BODY_GRACE_MS = 5_000;

/**
 * The disk tier: one metadata file and one body file per entry, and an index
 * in memory (key → variants, in least-recently-used order) rebuilt from the
 * metadata files in the background at boot. Lookups answer from the index
 * without touching the disk; bodies are streamed from their files when sent.
 *
 * Writes go to a temporary name and are renamed into place. The index changes
 * only after a rename, and listeners hear of every entry indexed (including
 * those found at boot) and every entry removed.
 */
export class DiskStore implements StreamingStore, BodyOwner {
  readonly maxObjectSize: number;

  readonly #options: DiskStoreOptions;
  readonly #claim: DirectoryClaim;
  /** Settles once the directory is known to be ours; every write waits for it. Replaced when a later claim takes the directory. */
  #claimed: Promise<void>;
  /** See `ready`. */
  #ready: Promise<void>;
  /** Set once a claim succeeded. */
  #claimedOnce = false;
  /** See keepFoundIf. */
  #keepFound: ((key: string, tags: readonly string[]) => boolean) | undefined;
  /** Write stamp when a later claim took the directory (0: it never did); records older than it were written without this process's purges. */
  #takenOverAt = 0;
  /** Key → variants, least recently used first. */
  readonly #keys = new Map<string, KeyRecord>();
  /** Keys put at the back of #keys so far (stores and touches). */
  #moves = 0;
  #bytes = 0;
  #entries = 0;
  /** Body id → index records and writes holding it; at zero the file is removed. */
  readonly #refs = new Map<string, number>();
  /** Key → stamp of its last delete, kept while writes or the boot scan might still add an older copy. */
  readonly #deleted = new Map<string, number>();
  /** Temporary files this process is writing; the boot scan leaves them alone. */
  readonly #temps = new Set<string>();
  /**
   * Metadata ids whose files this process is writing: once renamed into
   * place, a file may be read by the boot scan before store() hears that
   * its write is done. The scan leaves it to store(), which indexes it (or
   * undoes it) exactly once.
   */
  readonly #writingMeta = new Set<string>();
  /** Body ids this process wrote while the boot scan runs; they are not orphans. */
  readonly #fresh = new Set<string>();
  readonly #io = new Set<Promise<unknown>>();
  /** Writes whole entries (body and metadata) off the event loop; streamed bodies go through DiskBodyWriter. */
  readonly #writer: DiskWriteThread;
  readonly #doomed = new Map<string, NodeJS.Timeout>();
  /** Writes in flight per key: a delete leaves a tombstone only for a key being written (or during boot). */
  readonly #writing = new Map<string, number>();
  #booting = true;
  #lastStamp = 0;
  #unusable: Error | undefined;
  /** Times the directory was lost to another holder (a boot scan from before stops acting on it). */
  #losses = 0;
  #closed = false;
  /** Metadata ids other workers removed while the boot scan runs: the scan must not bring them back. */
  readonly #removedByPeers = new Set<string>();
  /** True while a change from another worker is applied: it is not announced back. */
  #applyingPeer = false;

  constructor(options: DiskStoreOptions) {
    this.#options = options;
    this.maxObjectSize = Math.min(options.maxObjectSize, options.maxSize);
    this.#writer = new DiskWriteThread(options.startWriteThread);
    this.#claim = new DirectoryClaim({
      dir: options.dir,
      ...(options.shared && { sharedWith: options.shared.lockHolder }),
      ...(options.claimRetryMs !== undefined && { retryMs: options.claimRetryMs }),
      onClaimed: (lock) => this.#claimedLater(lock),
      onFailed: (error) => {
        this.#unusable = asError(error);
        this.#options.onError?.(error, 'disk cache directory');
      },
      onLost: (error) => this.#lostDirectory(error),
    });
    this.#claimed = this.#claim.first.then(() => undefined);
    // The write thread starts as soon as the directory is ours (idle, it holds nothing open), so the first miss does not wait for it.
    this.#claimed.then(
      () => this.#startWriter(),
      () => undefined,
    );
    this.#ready = this.#boot();
  }

  /**
   * Settles when the boot scan has indexed every entry on disk, or once the
   * directory is refused. If another holder keeps the directory, the disk
   * tier is off (nothing is stored, lookups miss) while the claim is tried
   * again in the background; when it succeeds the scan runs then, and this
   * is the promise of that scan.
   */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** Whether the tier stores and answers: its directory claimed (not refused since), the store open. */
  get inUse(): boolean {
    return this.#claimedOnce && this.#unusable === undefined && !this.#closed;
  }

  /** Whether the directory is held by another holder and claimed again on a timer (the disk tier is off meanwhile). */
  get waitingForDirectory(): boolean {
    return this.#unusable !== undefined && this.#claim.retrying;
  }

  /** Claims made in the background so far (diagnostics; tests wait on it). */
  get claimAttempts(): number {
    return this.#claim.attempts;
  }

  /**
   * Purges this process made while its tier was off (the directory held
   * elsewhere) could not reach the files there: when a later claim takes the
   * directory, an entry found on it that was written before then is kept
   * only if `keep` says no purge since this process started names it
   * (otherwise its files are removed). With workers, "then" is when the
   * primary took the directory (the lock records it): no worker writes before
   * the lock names the primary, so every record older than that came from the
   * other holder, and every worker applies the same purges (relayed), so each
   * drops the same records.
   */
  keepFoundIf(keep: (key: string, tags: readonly string[]) => boolean): void {
    this.#keepFound = keep;
  }

  /** Scans the directory once it is claimed; a refusal leaves the tier unusable (for now, if the claim is tried again). */
  #boot(): Promise<void> {
    // A scan from before a loss (see #lostDirectory) must not end the boot of a later claim's scan, nor turn the tier off.
    const losses = this.#losses;
    const current = () => this.#losses === losses;
    return this.#claimed
      .then(() => {
        this.#claimedOnce = true;
        return scanDirectory(this.#options.dir, this.#scanHost(current));
      })
      .then(
        () => {
          if (current()) this.#bootDone();
        },
        (error: unknown) => {
          if (!current()) return;
          this.#unusable = asError(error);
          this.#options.onError?.(error, 'disk cache directory');
          if (this.#claim.retrying) {
            const every = (this.#options.claimRetryMs ?? claimRetryMs()) / 1000;
            this.#options.log?.(`disk cache: the disk tier is off (responses are not stored) until ${this.#options.dir} is free; trying again every ${every} s`);
          }
          this.#bootDone();
        },
      );
  }

  /** A claim tried again took the directory: the tier comes into use, with the boot scan it skipped. */
  #claimedLater(lock: LockInfo): void {
    this.#options.log?.(`disk cache: ${this.#options.dir} is free now (its holder stopped, or its lock went stale); the disk tier is in use`);
    this.#booting = true;
    this.#unusable = undefined;
    // Write stamps are epoch microseconds (see #stamp). A worker takes its primary's moment; a lock without one (an older primary) none.
    if (this.#options.shared === undefined) this.#takenOverAt = this.#stamp();
    else this.#takenOverAt = lock.claimedAt === undefined ? 0 : lock.claimedAt * 1000;
    this.#claimed = Promise.resolve();
    this.#startWriter();
    this.#ready = this.#boot().then(() => {
      if (this.#unusable === undefined) this.#options.log?.(`disk cache: index rebuilt from ${this.#options.dir} (${this.#entries} entries)`);
    });
  }

  /**
   * The lock now names another holder: it took the directory over (this
   * process stopped refreshing the lock for longer than its staleness window,
   * or, for a worker, its primary lost it). The tier goes off and claims
   * again, as while waiting at start. The index is let go of without touching
   * the files: they are the other holder's now.
   */
  #lostDirectory(error: Error): void {
    if (this.#closed) return;
    this.#losses++;
    this.#unusable = error;
    this.#options.onError?.(error, 'disk cache directory');
    const every = (this.#options.claimRetryMs ?? claimRetryMs()) / 1000;
    this.#options.log?.(`disk cache: ${this.#options.dir} is another holder's now; the disk tier is off (responses are not stored) until it is free; trying again every ${every} s`);
    for (const [key, record] of [...this.#keys]) {
      this.#keys.delete(key);
      for (const stored of variantsOf(record)) {
        this.#bytes -= stored.entry.size;
        this.#entries--;
        this.#options.listener?.onRemove?.(stored.entry, 'delete');
      }
    }
    for (const timer of this.#doomed.values()) clearTimeout(timer);
    this.#doomed.clear();
    this.#refs.clear();
    this.#deleted.clear();
  }

  get booting(): boolean {
    return this.#booting;
  }

  get(key: string): readonly Entry[] | undefined {
    const record = this.#keys.get(key);
    if (record === undefined) return undefined;
    const now = this.#options.clock();
    let live = record;
    if (!variantsOf(record).every((stored) => stored.entry.deleteAt > now)) {
      live = this.#keep(key, record, (stored) => stored.entry.deleteAt > now, 'expire');
      if (countOf(live) === 0) return undefined;
    }
    this.touch(key);
    // An array per lookup, not one kept per key: the tiered store asks here only for keys memory cannot answer (bodies then come from files).
    return variantsOf(live).map((stored) => stored.entry);
  }

  /** How many variants the index holds for a key (the tiered store checks memory against it). */
  variantCount(key: string): number {
    const record = this.#keys.get(key);
    return record === undefined ? 0 : countOf(record);
  }

  /**
   * Marks a key as just used, for LRU eviction: it goes to the back of the
   * order, unless it is still among the most recently moved quarter of the
   * keys. Moving a Map key (delete + set) on every hit cost V8 up to ~100 µs
   * per hit on a hot key once the index held tens of thousands of keys;
   * this way a hot key moves again only after a quarter of the others have.
   * Eviction takes keys from the front, so the order it sees stays exact
   * except among the youngest quarter.
   */
  touch(key: string): void {
    const record = this.#keys.get(key);
    if (record !== undefined) this.#touchRecord(key, record);
  }

  /**
   * For a memory hit: whether the index holds exactly `count` variants of
   * the key (so memory holds every one), marking the key used when it
   * does. One index lookup on the hit path, where variantCount and touch
   * took two.
   */
  touchIfHolding(key: string, count: number): boolean {
    const record = this.#keys.get(key);
    if (record === undefined || countOf(record) !== count) return false;
    this.#touchRecord(key, record);
    return true;
  }

  #touchRecord(key: string, record: KeyRecord): void {
    if (this.#moves - record.moved <= this.#keys.size / 4) return;
    record.moved = ++this.#moves;
    this.#keys.delete(key);
    this.#keys.set(key, record);
  }

  /** Whether this exact entry object is the one indexed for its variant. */
  holds(entry: Entry): boolean {
    return this.#variants(entry.key).some((stored) => stored.entry === entry);
  }

  /** The indexed entry for a key and variant, if any. */
  current(key: string, variant: string): Entry | undefined {
    return this.#variants(key).find((stored) => stored.entry.variant === variant)?.entry;
  }

  /**
   * Lets the memory tier hold an indexed entry with its body read back into
   * memory: the index keeps that same object from now on (see Stored).
   * Answers it, or undefined when the entry is no longer the indexed one.
   */
  share(entry: Entry, bytes: Buffer): Entry | undefined {
    const { record, at } = this.#find(entry);
    if (record === undefined || bytes.length !== entry.body.length) return undefined;
    if (Buffer.isBuffer(entry.body)) return entry;
    const shared = withBody(entry, bytes);
    this.#replaceAt(entry.key, record, at, shared);
    return shared;
  }

  /**
   * The memory tier let go of an entry (or did not take it): if the index
   * shares that object, it takes a copy of its own whose body is the file,
   * so the bytes can go. Nothing else changes: the variant is still stored.
   */
  unshare(entry: Entry): void {
    const body = entry.body;
    if (!Buffer.isBuffer(body)) return;
    const { record, at } = this.#find(entry);
    if (record === undefined) return;
    const stored = variantsOf(record)[at]!;
    this.#replaceAt(entry.key, record, at, this.#indexedEntry(entry, { id: stored.bodyId, length: body.length, crc: stored.crc >>> 0 }));
  }

  /**
   * The memory tier replaced a shared entry with a copy whose bytes live
   * elsewhere (slab compaction): the index holds the copy from now on.
   */
  replaceShared(from: Entry, to: Entry): void {
    const { record, at } = this.#find(from);
    if (record !== undefined) this.#replaceAt(from.key, record, at, to);
  }

  /** The record holding this very entry object, and its place among the record's variants. */
  #find(entry: Entry): { record: KeyRecord | undefined; at: number } {
    const record = this.#keys.get(entry.key);
    const at = record === undefined ? -1 : variantsOf(record).findIndex((stored) => stored.entry === entry);
    return at < 0 ? { record: undefined, at } : { record, at };
  }

  /** The variants indexed under a key, newest first (an empty array when none). */
  #variants(key: string): readonly Stored[] {
    const record = this.#keys.get(key);
    return record === undefined ? NO_VARIANTS : variantsOf(record);
  }

  /** The same variants, the one at `at` described by another object for the same stored files. */
  #replaceAt(key: string, record: KeyRecord, at: number, entry: Entry): void {
    const stored = variantsOf(record).map((item, i) => (i === at ? { entry, metaId: item.metaId, bodyId: item.bodyId, written: item.written, crc: item.crc, moved: 0 } : item));
    // Map.set on a present key keeps its place in the LRU order.
    this.#keys.set(key, recordOf(stored, record.moved));
  }

  async set(entry: Entry): Promise<void> {
    await this.store(entry);
  }

  /**
   * Stores an entry; answers the entry as indexed, or undefined when it was
   * not stored. With `share`, an entry whose body is in memory is indexed as
   * it is, to be handed to the memory tier (which must `unshare` it when it
   * lets go of it, or refuses it); otherwise the index keeps a copy whose body is the file.
   */
  async store(entry: Entry, share = false): Promise<Entry | undefined> {
    if (entry.size > this.#options.maxSize || entry.body.length > this.maxObjectSize) return undefined;
    if (this.#unusable !== undefined) throw this.#unusable;
    if (this.#closed) throw new Error('disk store is closed');
    const started = this.#stamp();
    this.#writing.set(entry.key, (this.#writing.get(entry.key) ?? 0) + 1);
    let held: string | undefined;
    try {
      await this.#claimed;
      const { bytes, ...body } = this.#bodyFor(entry);
      held = body.id;
      // A body written now names its metadata file too (<id>.body, <id>.meta): the index then holds one id string, not two.
      // Metadata rewritten for a body already stored (soft purge, freshening) takes a new id.
      const metaId = bytes !== undefined ? body.id : newId();
      const written = this.#stamp();
      const meta = entryMeta(entry);
      const metaFile = { path: pathOf(this.#options.dir, metaId, 'meta'), data: encodeMeta({ entry: meta, body, written }) };
      // One job for both files, the body first: the metadata that names a body is only ever renamed into place after it.
      const files = bytes === undefined ? [metaFile] : [{ path: pathOf(this.#options.dir, body.id, 'body'), data: bytes }, metaFile];
      this.#writingMeta.add(metaId);
      try {
        await this.#track(this.#writer.write(files, this.#temps));
      } catch (error) {
        this.#writingMeta.delete(metaId);
        throw error;
      }
      // Indexed (or undone) below, in this same turn: the scan may now see it as it sees any other file.
      this.#writingMeta.delete(metaId);
      // A delete that happened while this was being written wins: the write is undone, as if it came first.
      // So does losing the directory meanwhile (the index was let go of; the files are another holder's).
      if ((this.#deleted.get(entry.key) ?? 0) > started || this.#closed || this.#unusable !== undefined) {
        this.#unlink(pathOf(this.#options.dir, metaId, 'meta'));
        return undefined;
      }
      // Another worker's copy of this variant, adopted while this one was being written, may be the later one:
      // every index keeps the same copy of a variant (the order of #adopt), so this one then gives way.
      const peer = this.#variants(entry.key).find((stored) => stored.entry.variant === entry.variant);
      if (peer !== undefined && laterCopy(peer, { written, metaId })) {
        this.#unlink(pathOf(this.#options.dir, metaId, 'meta'));
        return peer.entry;
      }
      const indexed = share && Buffer.isBuffer(entry.body) ? entry : this.#indexedEntry(meta, body);
      this.#add({ entry: indexed, metaId, bodyId: body.id, written, crc: body.crc | 0, moved: 0 });
      this.#options.shared?.announce({ kind: 'stored', metaId, record: { entry: meta, body, written } });
      return indexed;
    } finally {
      if (held !== undefined) this.release(held);
      const writing = (this.#writing.get(entry.key) ?? 1) - 1;
      if (writing > 0) this.#writing.set(entry.key, writing);
      else {
        this.#writing.delete(entry.key);
        if (!this.#booting) this.#deleted.delete(entry.key);
      }
    }
  }

  delete(key: string): number {
    const record = this.#keys.get(key);
    if (this.#booting || this.#writing.has(key)) this.#deleted.set(key, this.#stamp());
    if (record === undefined) return 0;
    this.#keep(key, record, () => false, 'delete');
    return countOf(record);
  }

  /** Removes one variant (a revalidation said it may no longer be stored). */
  deleteVariant(entry: Entry): void {
    const record = this.#keys.get(entry.key);
    if (record !== undefined) this.#keep(entry.key, record, (stored) => stored.entry.variant !== entry.variant, 'delete');
  }

  *keys(): Iterable<string> {
    yield* [...this.#keys.keys()];
  }

  sweep(now: number): number {
    let removed = 0;
    for (const [key, record] of [...this.#keys]) {
      removed += countOf(record) - countOf(this.#keep(key, record, (stored) => stored.entry.deleteAt > now, 'expire'));
    }
    return removed;
  }

  stats(): { entries: number; bytes: number; maxBytes: number } {
    return { entries: this.#entries, bytes: this.#bytes, maxBytes: this.#options.maxSize };
  }

  createBodyWriter(): BodyWriter | undefined {
    if (this.#unusable !== undefined || this.#closed) return undefined;
    const id = newId();
    if (this.#booting) this.#fresh.add(id);
    const host = { owner: this as BodyOwner, claimed: this.#claimed, temps: this.#temps, hold: (held: string) => this.#ref(held), release: (held: string) => this.release(held) };
    return new DiskBodyWriter(host, id, pathOf(this.#options.dir, id, 'body'), this.maxObjectSize);
  }

  /** A body file failed its checks on read: every entry using it goes, with one log line. */
  corrupt(body: FileBody, reason: string): void {
    const id = idOf(body.path);
    let found = false;
    for (const [key, record] of [...this.#keys]) {
      if (!variantsOf(record).some((stored) => stored.bodyId === id)) continue;
      found = true;
      this.#keep(key, record, (stored) => stored.bodyId !== id, 'delete');
    }
    if (found) this.#options.log?.(`disk cache: removed an entry whose body file ${body.path} is damaged (${reason})`);
  }

  /**
   * Applies a change another worker made: an entry it wrote is indexed here
   * (unless a newer copy of the variant is), one it dropped is dropped here.
   * Files are left to the worker that made the change.
   */
  applyPeerChange(change: DiskChange): void {
    if (this.#closed || this.#unusable !== undefined) return;
    if (change.kind === 'stored') {
      // Even if already past its delete time (a soft purge without grace): it still replaces any older copy here.
      // Evictions this causes are announced: each index orders its keys by its own use.
      this.#adopt(change.record, change.metaId);
      return;
    }
    if (this.#booting) this.#removedByPeers.add(change.metaId);
    const record = this.#keys.get(change.key);
    if (record === undefined) return;
    this.#applyingPeer = true;
    try {
      this.#keep(change.key, record, (stored) => stored.metaId !== change.metaId, 'delete');
    } finally {
      this.#applyingPeer = false;
    }
  }

  /** Waits for writes and removals in flight; the files stay for the next start. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#claim.stop();
    await this.ready;
    while (this.#io.size > 0) await Promise.allSettled([...this.#io]);
    for (const [id, timer] of this.#doomed) {
      clearTimeout(timer);
      this.#removeBody(id);
    }
    while (this.#io.size > 0) await Promise.allSettled([...this.#io]);
    await this.#writer.close();
    // Shared, the lock is the primary's, released when it exits.
    if (this.#unusable === undefined && this.#options.shared === undefined) await unlockDirectory(this.#options.dir);
  }

  #startWriter(): void {
    try {
      this.#writer.start();
    } catch (error) {
      // Every write then fails (and the cache passes through); each tries to start the thread again.
      this.#options.onError?.(error, 'disk cache write thread');
    }
  }

  /**
   * The body file an entry's metadata will name, held: one already holding
   * these bytes, or a new id whose file is to be written with `bytes`.
   */
  #bodyFor(entry: Entry): { id: string; length: number; crc: number; bytes?: Buffer } {
    const body = entry.body;
    if (isFileBody(body)) {
      if (body.owner !== this) throw new Error('a file body from another store cannot be stored here');
      const id = idOf(body.path);
      if (!this.#holdIfStored(id)) throw new Error(`body file ${body.path} is no longer stored`);
      return { id, length: body.length, crc: body.crc };
    }
    // An entry the memory tier shares with the index, stored again (soft purge, freshening): its bytes are in a file already.
    // The same bytes may also be another copy (the memory tier moves bodies out of sparse slabs; an origin may answer anew with the same body): compared, not written again.
    const known = this.#variants(entry.key).find((item) => item.entry.body === body || (Buffer.isBuffer(item.entry.body) && item.entry.variant === entry.variant && item.entry.body.equals(body)));
    if (known !== undefined && this.#holdIfStored(known.bodyId)) return { id: known.bodyId, length: body.length, crc: known.crc >>> 0 };
    const id = newId();
    if (this.#booting) this.#fresh.add(id);
    this.#ref(id);
    return { id, length: body.length, crc: crc32(body), bytes: body };
  }

  #indexedEntry(meta: EntryMeta, body: { id: string; length: number; crc: number }): Entry {
    const fileBody: FileBody = { kind: 'file', path: pathOf(this.#options.dir, body.id, 'body'), length: body.length, crc: body.crc, owner: this };
    return withBody(meta, fileBody);
  }

  /** Indexes a stored variant: newest first, the same variant replaced, the oldest beyond the cap dropped. */
  #add(stored: Stored): void {
    const key = stored.entry.key;
    const previous = this.#variants(key);
    const others = previous.filter((old) => old.entry.variant !== stored.entry.variant);
    const replaced = previous.filter((old) => old.entry.variant === stored.entry.variant);
    let kept = [stored, ...others].slice(0, this.#options.maxVariants);
    // Older variants that would take this key alone past the tier's bound go too (eviction spares the key just written).
    while (kept.length > 1 && kept.reduce((sum, item) => sum + item.entry.size, 0) > this.#options.maxSize) kept = kept.slice(0, -1);
    const dropped = others.slice(kept.length - 1);
    this.#keys.delete(key);
    this.#keys.set(key, recordOf(kept, ++this.#moves));
    this.#ref(stored.bodyId);
    this.#bytes += stored.entry.size;
    this.#entries++;
    for (const old of replaced) this.#drop(old, 'replace');
    for (const old of dropped) this.#drop(old, 'evict');
    this.#options.listener?.onStore?.(stored.entry);
    this.#evictBeyondBound(key);
  }

  /** Keeps the variants that pass `keep`; the others are dropped for `reason`. */
  #keep(key: string, record: KeyRecord, keep: (stored: Stored) => boolean, reason: RemovalReason): KeyRecord {
    const variants = variantsOf(record);
    const live = variants.filter(keep);
    if (live.length === variants.length) return record;
    const next = recordOf(live, record.moved);
    if (live.length === 0) this.#keys.delete(key);
    else this.#keys.set(key, next);
    for (const stored of variants) if (!live.includes(stored)) this.#drop(stored, reason);
    return next;
  }

  /** Least recently used keys go until the bytes fit; eviction only drops index records and unlinks in the background. */
  #evictBeyondBound(spare: string): void {
    if (this.#bytes <= this.#options.maxSize) return;
    for (const [key, record] of this.#keys) {
      if (this.#bytes <= this.#options.maxSize) break;
      if (key !== spare) this.#keep(key, record, () => false, 'evict');
    }
  }

  #drop(stored: Stored, reason: RemovalReason): void {
    this.#bytes -= stored.entry.size;
    this.#entries--;
    // The metadata goes at once, so a restart cannot bring the entry back; the body after a grace period.
    this.#unlink(pathOf(this.#options.dir, stored.metaId, 'meta'));
    this.release(stored.bodyId);
    // A replacement needs no word: every worker replaces the same way when it hears of the newer copy.
    if (!this.#applyingPeer && reason !== 'replace') {
      this.#options.shared?.announce({ kind: 'removed', key: stored.entry.key, variant: stored.entry.variant, metaId: stored.metaId });
    }
    this.#options.listener?.onRemove?.(stored.entry, reason);
  }

  /** Takes a reference on a body file, saving it from a removal scheduled for it. */
  #ref(id: string): void {
    const timer = this.#doomed.get(id);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#doomed.delete(id);
    }
    this.#refs.set(id, (this.#refs.get(id) ?? 0) + 1);
  }

  /** Takes a reference if the body file is still there (referenced, or within its grace period). */
  #holdIfStored(id: string): boolean {
    if (!this.#refs.has(id) && !this.#doomed.has(id)) return false;
    this.#ref(id);
    return true;
  }

  /** Drops a reference on a body file; the last one schedules its removal. */
  release(id: string): void {
    const count = this.#refs.get(id);
    if (count === undefined) return;
    if (count > 1) {
      this.#refs.set(id, count - 1);
      return;
    }
    this.#refs.delete(id);
    if (this.#closed) {
      this.#removeBody(id);
      return;
    }
    const timer = setTimeout(() => {
      this.#doomed.delete(id);
      if (!this.#refs.has(id)) this.#removeBody(id);
    }, BODY_GRACE_MS);
    timer.unref();
    this.#doomed.set(id, timer);
  }

  #removeBody(id: string): void {
    this.#fresh.delete(id);
    this.#unlink(pathOf(this.#options.dir, id, 'body'));
  }

  #unlink(path: string): void {
    void this.#track(
      unlink(path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') this.#options.onError?.(error, 'disk cache unlink');
      }),
    );
  }

  #track<T>(work: Promise<T>): Promise<T> {
    this.#io.add(work);
    const done = () => this.#io.delete(work);
    work.then(done, done);
    return work;
  }

  /**
   * Orders writes and deletes, also across restarts: wall-clock ms times 1000,
   * plus a counter for events within one millisecond (strictly increasing here).
   */
  #stamp(): number {
    this.#lastStamp = Math.max(Date.now() * 1000, this.#lastStamp + 1);
    return this.#lastStamp;
  }

  /** Deletes remembered against writes in flight (diagnostics: it stays small, whatever the delete rate). */
  get tombstones(): number {
    return this.#deleted.size;
  }

  /** After boot, tombstones are kept only for keys still being written. */
  #forgetDeletes(): void {
    if (this.#booting) return;
    for (const key of this.#deleted.keys()) if (!this.#writing.has(key)) this.#deleted.delete(key);
  }

  #bootDone(): void {
    this.#booting = false;
    this.#fresh.clear();
    this.#removedByPeers.clear();
    this.#forgetDeletes();
    this.#evictBeyondBound('');
  }

  #scanHost(current: () => boolean): ScanHost {
    // A scan still running when the directory is lost (see #lostDirectory) neither indexes nor removes anything more: the files are another holder's.
    return {
      stopped: () => !current(),
      clock: this.#options.clock,
      temps: this.#temps,
      log: (message) => this.#options.log?.(message),
      unlink: (path) => {
        if (current()) this.#unlink(path);
      },
      isFresh: (id) => this.#fresh.has(id) || this.#refs.has(id) || this.#doomed.has(id),
      ...(this.#options.shared && { sharedSince: this.#options.shared.since }),
      adopt: (record, metaId) => (current() ? this.#adopt(record, metaId) : 'known'),
    };
  }

  /**
   * A record found at boot or announced by another worker: indexed unless
   * deleted or replaced meanwhile, or indexed already. Copies of one variant
   * are ordered by write stamp, then id, so every worker keeps the same one.
   */
  #adopt(record: MetaRecord, metaId: string): 'indexed' | 'known' | 'superseded' {
    const { entry: meta, body, written } = record;
    const current = this.#variants(meta.key).find((stored) => stored.entry.variant === meta.variant);
    if (current?.metaId === metaId || this.#writingMeta.has(metaId)) return 'known';
    if (written < this.#takenOverAt && this.#keepFound !== undefined && !this.#keepFound(meta.key, meta.tags)) return 'superseded';
    if ((this.#deleted.get(meta.key) ?? 0) > written || this.#removedByPeers.has(metaId)) return 'superseded';
    if (current !== undefined && laterCopy(current, { written, metaId })) return 'superseded';
    this.#add({ entry: this.#indexedEntry(meta, body), metaId, bodyId: body.id, written, crc: body.crc | 0, moved: 0 });
    return 'indexed';
  }
}

/**
 * Which of two copies of one variant every worker keeps: the one written
 * later, and of two written in the same microsecond the one with the larger
 * id. One rule, used when a copy is adopted and when a local write lands, so
 * every index settles on the same copy whatever order they hear of them in.
 */
function laterCopy(a: { readonly written: number; readonly metaId: string }, b: { readonly written: number; readonly metaId: string }): boolean {
  return a.written > b.written || (a.written === b.written && a.metaId > b.metaId);
}

/** The record for these variants (newest first); one variant is its own record (see KeyRecord). */
function recordOf(stored: readonly Stored[], moved: number): KeyRecord {
  if (stored.length !== 1) return { stored, moved };
  const only = stored[0]!;
  only.moved = moved;
  return only;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
