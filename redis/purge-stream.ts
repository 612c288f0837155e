import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PurgeRelay, RelayedPurge } from '../purge/purger.js';
import type { RedisClient } from './connection.js';
import { memoryCursor, type PositionStore, type StreamPosition } from './cursor-file.js';
import { publishRedisEvent, type RedisOperation, type RelayStatus, type ResyncReason } from './events.js';
import { PurgeOutbox } from './outbox.js';
import { decodePurge, encodePurge, PURGE_EVERYTHING } from './purge-message.js';
import { ZERO_ID } from './stream-id.js';

/**
 * Carries purges between instances through one Redis Stream.
 *
 * Publishing: a purge made here is appended (XADD, trimmed to about
 * `retention` entries); while Redis cannot take it, it waits in a bounded
 * outbox and is sent, in order, when Redis returns. `send` never rejects.
 *
 * Reading: a dedicated connection reads the stream (XREAD BLOCK) from the
 * last entry applied here, applies other instances' purges and skips its
 * own. Two things can make that position meaningless, and both end in the
 * one safe move, a purge of everything held here (logged and counted):
 * - "trimmed": entries after the position may have been trimmed before
 *   they were read (the instance was away longer than the retention
 *   covers): the entry at the position itself is gone;
 * - "reset": the stream is not the one the position belongs to (Redis lost
 *   its data: restarted without persistence, flushed). Every life of the
 *   stream has an epoch, a random value kept next to it in Redis.
 */

export interface PurgeStreamOptions {
  /** For commands (publish, epoch). */
  readonly client: RedisClient;
  /** For XREAD BLOCK only: a blocked connection serves no other command. */
  readonly reader: RedisClient;
  readonly keyPrefix: string;
  readonly instanceId: string;
  /** Stream length kept (XADD MAXLEN ~). */
  readonly retention: number;
  /** Purges the outbox holds before it folds them into one purge of everything. */
  readonly queueSize: number;
  /** Longest wait for a publish before the purge is queued instead. */
  readonly commandTimeoutMs: number;
  /**
   * Runs before each publish, and must succeed for it (the shared tier's
   * purge): another instance that reads the purge then finds Redis already
   * purged. A failure queues the purge like a failed publish; a retry after
   * it outlasted `commandTimeoutMs` waits for the run still under way (or,
   * done, only publishes) rather than starting another.
   */
  readonly beforePublish?: (purge: RelayedPurge) => Promise<unknown>;
  /** Applies a purge from another instance (Purger.applyRelayed). */
  readonly apply: (purge: RelayedPurge) => Promise<unknown>;
  /** Where the position survives restarts; default in memory. */
  readonly positions?: PositionStore;
  readonly log: RelayLog;
  /** XREAD BLOCK time; the loop also wakes this often to notice close(). Default 2000. */
  readonly blockMs?: number;
  /** Entries per XREAD. Default 100. */
  readonly batchSize?: number;
}

export interface RelayLog {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

const RETRY_MS = 250;

export class PurgeStream implements PurgeRelay {
  readonly #options: PurgeStreamOptions;
  readonly #streamKey: string;
  readonly #epochKey: string;
  readonly #outbox: PurgeOutbox;
  readonly #positions: PositionStore;
  readonly #blockMs: number;
  readonly #batchSize: number;
  #position: StreamPosition | undefined;
  /** False after a (re)connection until the reader has established its position again. */
  #positioned = false;
  #caughtUp = false;
  readonly #caughtUpWaiters = new Set<() => void>();
  #closed = false;
  /** Ends the reader's pauses at once on close. */
  readonly #stop = new AbortController();
  #flushing: Promise<void> | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #readLoop: Promise<void> | undefined;
  #outage: { since: number; errors: number } | undefined;
  /**
   * The step before publishing (beforePublish) of each purge not yet
   * published, under way or done: a retry of a purge whose step outlasted
   * the command timeout waits for that step instead of starting it again (a
   * soft purge of everything scans the whole shared tier; scans piling up
   * would never end), and one whose step is done only publishes. A purge
   * leaves it once published, its step fails, or the queue folds (the one
   * purge of everything that replaces the queue, always the same object,
   * must run its step after everything it stands for).
   */
  readonly #prepared = new Map<RelayedPurge, Promise<unknown>>();
  /** Publishes send() started directly (nothing queued): close() waits for them as for the queue. */
  readonly #sending = new Set<Promise<void>>();

  constructor(options: PurgeStreamOptions) {
    this.#options = options;
    this.#streamKey = `${options.keyPrefix}purges`;
    this.#epochKey = `${options.keyPrefix}purges:epoch`;
    this.#outbox = new PurgeOutbox(options.queueSize);
    this.#positions = options.positions ?? memoryCursor();
    this.#position = this.#positions.load();
    this.#blockMs = options.blockMs ?? 2000;
    this.#batchSize = options.batchSize ?? 100;
  }

  /** Connects both clients (in the background: Lacquer serves whether or not Redis is there) and starts reading. */
  start(): void {
    for (const [client, role] of [[this.#options.client, 'publisher'], [this.#options.reader, 'reader']] as const) {
      // Without an error listener a connection error would be thrown and end the process.
      client.on('error', (error: unknown) => this.#connectionError(error, role));
      client.on('ready', () => this.#connected(role));
      client.connect().catch((error: unknown) => this.#connectionError(error, role));
    }
    this.#readLoop = this.#read();
  }

  status(): RelayStatus {
    return { connected: this.#options.client.isReady && this.#options.reader.isReady, queued: this.#outbox.size, caughtUp: this.#caughtUp, instanceId: this.#options.instanceId };
  }

  /** Resolves true once the reader has applied everything the stream held, false if `timeoutMs` passes first. */
  async caughtUp(timeoutMs: number): Promise<boolean> {
    if (this.#caughtUp) return true;
    let done!: () => void;
    const reached = new Promise<void>((resolve) => (done = resolve));
    this.#caughtUpWaiters.add(done);
    const timer = setTimeout(done, timeoutMs);
    await reached;
    clearTimeout(timer);
    this.#caughtUpWaiters.delete(done);
    return this.#caughtUp;
  }

  async send(purge: RelayedPurge): Promise<void> {
    // Behind queued purges, or with Redis away, a purge waits its turn: order is kept.
    if (this.#outbox.size > 0 || !this.#options.client.isReady) {
      this.#enqueue(purge);
      return;
    }
    const sending = this.#sendNow(purge);
    this.#sending.add(sending);
    try {
      await sending;
    } finally {
      this.#sending.delete(sending);
    }
  }

  async #sendNow(purge: RelayedPurge): Promise<void> {
    try {
      await this.#publish(purge);
    } catch (error) {
      this.#failed('publish', error);
      this.#enqueue(purge);
    }
  }

  /**
   * Stops reading, publishes what is still queued (and lets a publish
   * send() started finish), and disconnects. These purges were accepted
   * here and answered: the other instances miss them
   * unless they are published now, so for up to `flushTimeoutMs` (the rest
   * of the drain, proxy/main.ts) this waits for a Redis that is away to
   * come back and retries a publish that fails. Past it, what is left is
   * logged, counted, and lost, and the close ends as before.
   */
  async close(flushTimeoutMs = 1000): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stop.abort();
    clearTimeout(this.#flushTimer);
    for (const done of this.#caughtUpWaiters) done();
    const started = Date.now();
    // A purge being published straight from send() was answered too: it either lands or joins the queue flushed below.
    if (this.#sending.size > 0) {
      const waited = new AbortController();
      await Promise.race([Promise.allSettled([...this.#sending]), sleep(flushTimeoutMs, undefined, { ref: false, signal: waited.signal }).catch(() => undefined)]);
      waited.abort();
    }
    const queued = this.#outbox.size;
    if (queued > 0) {
      await this.#flushWithin(Math.max(0, flushTimeoutMs - (Date.now() - started)));
      const details = { queued: this.#outbox.size, published: Math.max(0, queued - this.#outbox.size), waitedMs: Date.now() - started };
      if (this.#outbox.size > 0) this.#options.log.warn(details, 'redis: purges not published before shutdown; other instances will not see them');
      else this.#options.log.info(details, 'redis: queued purges published before shutdown');
    }
    // destroy() ends the blocked XREAD at once; the loop sees #closed and returns.
    for (const client of [this.#options.reader, this.#options.client]) if (client.isOpen) client.destroy();
    // destroy() fails the pending read at once; the bound only guards against a client that does not.
    await Promise.race([this.#readLoop, sleep(2000, undefined, { ref: false })]);
  }

  /** Publishes the outbox until it is empty or `budgetMs` has passed: waits out a Redis that is away, and retries failures. */
  async #flushWithin(budgetMs: number): Promise<void> {
    const giveUp = new AbortController();
    // Cleared below: it bounds the close, and never keeps the process alive after it.
    const deadline = setTimeout(() => giveUp.abort(), budgetMs);
    const gaveUp = new Promise<void>((resolve) => giveUp.signal.addEventListener('abort', () => resolve(), { once: true }));
    try {
      while (this.#outbox.size > 0 && !giveUp.signal.aborted) {
        if (!this.#options.client.isReady) {
          // The client reconnects by itself (connection.ts); a flush can start once it is back.
          await waitUntilReady(this.#options.client, giveUp.signal);
          continue;
        }
        // A flush already running (a reconnection starts one) finishes its publish first, then this one publishes the rest.
        await Promise.race([this.#flushAll(), gaveUp]);
        if (this.#outbox.size > 0) await sleep(RETRY_MS, undefined, { signal: giveUp.signal }).catch(() => undefined);
      }
    } finally {
      clearTimeout(deadline);
    }
  }

  async #publish(purge: RelayedPurge): Promise<void> {
    const { client, retention, commandTimeoutMs, instanceId, beforePublish } = this.#options;
    if (beforePublish !== undefined) await withTimeout(this.#prepare(purge, beforePublish), commandTimeoutMs);
    const added = client.xAdd(this.#streamKey, '*', encodePurge(instanceId, purge), {
      TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: retention },
    });
    // node-redis cannot take back a command already written (its abort signal and timeout apply
    // only to commands still queued), so a hung Redis is timed out here. The XADD may still land
    // later; the queued copy then purges twice, which is harmless.
    await withTimeout(added, commandTimeoutMs);
    this.#prepared.delete(purge);
    publishRedisEvent({ kind: 'published' });
  }

  /** beforePublish(purge), or its run for this purge that is under way or done (a retry after a timeout). */
  #prepare(purge: RelayedPurge, beforePublish: (purge: RelayedPurge) => Promise<unknown>): Promise<unknown> {
    const known = this.#prepared.get(purge);
    if (known !== undefined) return known;
    const started = beforePublish(purge);
    this.#prepared.set(purge, started);
    // A failed step runs again at the next attempt.
    started.catch(() => {
      if (this.#prepared.get(purge) === started) this.#prepared.delete(purge);
    });
    return started;
  }

  #enqueue(purge: RelayedPurge): void {
    if (this.#outbox.push(purge) === 'folded') {
      this.#prepared.clear();
      publishRedisEvent({ kind: 'folded' });
      this.#options.log.warn({ queueSize: this.#options.queueSize }, 'redis: purge queue full; queued purges folded into one purge of everything');
    }
    this.#scheduleFlush();
  }

  #scheduleFlush(delayMs = RETRY_MS): void {
    if (this.#closed || this.#flushTimer !== undefined || this.#outbox.size === 0) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      void this.#flush(false);
    }, delayMs);
    this.#flushTimer.unref();
  }

  /** Publishes queued purges oldest first; stops at the first failure and tries again later. One flush runs at a time. */
  #flush(closing: boolean): Promise<void> {
    if (this.#flushing === undefined) {
      this.#flushing = this.#drain(closing).finally(() => {
        this.#flushing = undefined;
        this.#scheduleFlush();
      });
    }
    return this.#flushing;
  }

  /** At close: a flush already running stops after its current publish (#closed), so the rest is published after it. */
  async #flushAll(): Promise<void> {
    await this.#flushing;
    await this.#flush(true);
  }

  async #drain(closing: boolean): Promise<void> {
    while (this.#outbox.size > 0 && (closing || !this.#closed) && this.#options.client.isReady) {
      try {
        const head = this.#outbox.peek()!;
        await this.#publish(head);
        this.#outbox.shiftIf(head);
      } catch (error) {
        this.#failed('publish', error);
        return;
      }
    }
  }

  async #read(): Promise<void> {
    const { reader } = this.#options;
    while (!this.#closed) {
      try {
        if (!reader.isReady) {
          await waitUntilReady(reader, this.#stop.signal);
          continue;
        }
        if (!this.#positioned) await this.#establishPosition();
        await this.#readBatch();
      } catch (error) {
        if (this.#closed) return;
        this.#failed('read', error);
        this.#positioned = false;
        await sleep(RETRY_MS, undefined, { signal: this.#stop.signal }).catch(() => undefined);
      }
    }
  }

  /**
   * After every (re)connection: which life of the stream this is, and where
   * to read from. Without a position (a fresh memory-only instance, a new
   * cache directory) reading starts at the stream's end: what was purged
   * before is not held here.
   */
  async #establishPosition(): Promise<void> {
    const { reader } = this.#options;
    await reader.set(this.#epochKey, randomUUID(), { condition: 'NX' });
    const epoch = await reader.get(this.#epochKey);
    if (epoch === null) throw new Error('the purge stream epoch vanished as it was set');
    const known = this.#position;
    if (known === undefined) {
      this.#setPosition({ epoch, id: (await this.#streamInfo()).lastId });
    } else if (known.epoch !== epoch) {
      await this.#resync('reset', { epoch: known.epoch === '' ? '(none)' : known.epoch, now: epoch });
      // Everything here is gone, and every entry of the new stream is newer than that: read it all.
      this.#setPosition({ epoch, id: ZERO_ID });
    }
    this.#positioned = true;
    this.#caughtUp = false;
  }

  async #readBatch(): Promise<void> {
    const { reader, instanceId } = this.#options;
    const before = this.#position!;
    // Until caught up, read without blocking, so an empty answer means "read to the end".
    const options = this.#caughtUp ? { BLOCK: this.#blockMs, COUNT: this.#batchSize } : { COUNT: this.#batchSize };
    // Pipelined after the read on the same connection, so they describe the stream as it was when the read returned.
    const [read, trimmed, epoch] = await Promise.allSettled([
      reader.xRead({ key: this.#streamKey, id: before.id }, options),
      this.#trimmedAfter(before.id),
      reader.get(this.#epochKey),
    ]);
    if (read.status === 'rejected') throw read.reason;
    if (this.#closed) return;
    const entries = messagesOf(read.value);
    let last = before.id;
    for (const entry of entries) {
      last = entry.id;
      const decoded = decodePurge(entry.message);
      if (typeof decoded === 'string') {
        this.#options.log.warn({ id: entry.id, problem: decoded }, 'redis: skipped a purge-stream entry that is not a purge');
        continue;
      }
      if (decoded.from === instanceId) continue;
      try {
        await this.#options.apply(decoded.purge);
        publishRedisEvent({ kind: 'applied' });
      } catch (error) {
        // A purge this instance cannot carry out (a URL its key settings refuse) is logged and passed over.
        this.#failed('apply', error, { id: entry.id });
      }
    }
    if (epoch.status === 'fulfilled' && epoch.value !== before.epoch) {
      // The stream's life changed under the read: start over from the epoch check.
      this.#positioned = false;
      return;
    }
    if (trimmed.status === 'fulfilled' && trimmed.value) await this.#resync('trimmed', { position: before.id });
    if (last !== before.id) this.#setPosition({ epoch: before.epoch, id: last });
    if (!this.#caughtUp && entries.length < this.#batchSize) {
      this.#caughtUp = true;
      for (const done of this.#caughtUpWaiters) done();
    }
  }

  /**
   * Whether entries after `position` may have been trimmed away unread.
   * Trimming (MAXLEN) removes the oldest entries first, so while the entry at
   * the position is still there, nothing after it has gone. (Redis 7.0's
   * max-deleted-entry-id would say it directly, but XADD's trimming does not
   * update it.) From the start of a stream, anything deleted at all counts.
   */
  async #trimmedAfter(position: string): Promise<boolean> {
    if (position === ZERO_ID) {
      const info = await this.#streamInfo();
      return info.entriesAdded > info.length;
    }
    const reply = await this.#options.reader.xRange(this.#streamKey, position, position);
    return (reply?.length ?? 0) === 0;
  }

  async #streamInfo(): Promise<{ lastId: string; length: number; entriesAdded: number }> {
    let reply: unknown;
    try {
      reply = await this.#options.reader.sendCommand(['XINFO', 'STREAM', this.#streamKey]);
    } catch (error) {
      // No stream yet: nothing was ever published (or it all went with a reset, which the epoch tells).
      if (error instanceof Error && /no such key/i.test(error.message)) return { lastId: ZERO_ID, length: 0, entriesAdded: 0 };
      throw error;
    }
    // The reply is a flat list of name, value (RESP2), a Map, or a plain object, by protocol and client version.
    const fields = new Map<string, unknown>();
    if (Array.isArray(reply)) for (let i = 0; i + 1 < reply.length; i += 2) fields.set(String(reply[i]), reply[i + 1]);
    else if (reply instanceof Map) for (const [name, value] of reply) fields.set(String(name), value);
    else if (typeof reply === 'object' && reply !== null) for (const [name, value] of Object.entries(reply)) fields.set(name, value);
    const lastId = fields.get('last-generated-id');
    if (typeof lastId !== 'string') throw new Error('XINFO STREAM gave no last-generated-id');
    const length = Number(fields.get('length'));
    // entries-added is Redis 7.0+; before it, deletions from the start of a stream cannot be seen.
    const entriesAdded = Number(fields.get('entries-added') ?? length);
    return { lastId, length, entriesAdded };
  }

  async #resync(reason: ResyncReason, details: object): Promise<void> {
    this.#options.log.warn({ reason, ...details }, reason === 'trimmed'
      ? 'redis: purges this instance had not read were trimmed from the stream; purging everything held here'
      : 'redis: the purge stream was reset (Redis lost its data); purging everything held here');
    publishRedisEvent({ kind: 'resync', reason });
    await this.#options.apply(PURGE_EVERYTHING);
  }

  #setPosition(position: StreamPosition): void {
    this.#position = position;
    try {
      this.#positions.save(position);
    } catch (error) {
      // Not fatal: the position in memory is right; a restart would then apply some purges twice.
      this.#options.log.warn({ err: error }, 'redis: could not save the purge-stream position');
    }
  }

  #connected(role: string): void {
    if (this.#outage !== undefined && role === 'publisher') {
      this.#options.log.info({ downMs: Date.now() - this.#outage.since, errors: this.#outage.errors, queued: this.#outbox.size }, 'redis: connection restored');
      this.#outage = undefined;
    }
    if (role === 'publisher') void this.#flush(false);
  }

  #connectionError(error: unknown, role: string): void {
    if (this.#closed) return;
    publishRedisEvent({ kind: 'error', operation: 'connection' });
    // One line per outage, not one per reconnection attempt.
    if (this.#outage === undefined) {
      this.#outage = { since: Date.now(), errors: 0 };
      this.#options.log.warn({ err: error, role }, 'redis: connection lost; serving from local tiers, queueing purges');
    }
    this.#outage.errors++;
  }

  #failed(operation: RedisOperation, error: unknown, details: object = {}): void {
    publishRedisEvent({ kind: 'error', operation });
    if (operation === 'apply' || this.#outage === undefined) this.#options.log.warn({ err: error, ...details }, `redis: ${operation} failed`);
  }
}

interface StreamEntry {
  readonly id: string;
  readonly message: Record<string, unknown>;
}

/** node-redis answers XREAD with null (nothing new) or a list of streams with their messages. */
function messagesOf(reply: unknown): StreamEntry[] {
  if (!Array.isArray(reply)) return [];
  const out: StreamEntry[] = [];
  for (const stream of reply as { messages?: unknown }[]) {
    if (!Array.isArray(stream?.messages)) continue;
    for (const message of stream.messages as { id?: unknown; message?: unknown }[]) {
      if (typeof message?.id === 'string' && typeof message.message === 'object' && message.message !== null) {
        out.push({ id: message.id, message: message.message as Record<string, unknown> });
      }
    }
  }
  return out;
}

/** `promise`, or a rejection after `ms`; a late settlement of `promise` is ignored. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  promise.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves on the client's next "ready", or when `signal` aborts. */
async function waitUntilReady(client: RedisClient, signal: AbortSignal): Promise<void> {
  await once(client, 'ready', { signal }).catch(() => undefined);
}
