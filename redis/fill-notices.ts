import type { RedisClient } from './connection.js';

/**
 * Word that a fill lock was let go, carried from the instance that held it
 * to the instances waiting for its copy, so they look once instead of
 * polling Redis while the origin answers.
 *
 * The holder's release publishes the key on one channel (the shared tier's
 * unlock script, atomically with the release). Each instance keeps a single
 * subscriber connection on that channel, whatever the number of requests
 * waiting, and wakes the waits registered for that key.
 *
 * A message can be missed: the holder died before releasing (its lock
 * lapses, nobody publishes), or the subscriber connection dropped while it
 * was sent. So a wait never relies on a message alone: every wait is woken
 * each time the subscription is (re)established, to look again, and the
 * waiter also looks when the lock would lapse (shared-store.ts).
 */

export interface FillWatch {
  /** Resolves when the key's lock may have been let go (or a message may have been missed): time to look again. */
  readonly woken: Promise<void>;
  /** Stops watching; call once, always. */
  stop(): void;
}

export interface FillNotices {
  /** Starts watching `key`; a release published from now on wakes the watch. */
  watch(key: string): FillWatch;
}

/** No notices at all: waits end only when the lock would lapse. */
export const NO_FILL_NOTICES: FillNotices = {
  watch: () => ({ woken: new Promise<void>(() => undefined), stop: () => undefined }),
};

export interface FillSubscriberOptions {
  /** A connection of its own: one in subscriber mode takes no other command. Not yet connected. */
  readonly subscriber: RedisClient;
  readonly channel: string;
  readonly onError: (error: unknown) => void;
}

export class FillSubscriber implements FillNotices {
  readonly #options: FillSubscriberOptions;
  /** key -> the wakers of the waits on it. */
  readonly #watches = new Map<string, Set<() => void>>();
  #subscribed = false;
  #closed = false;

  constructor(options: FillSubscriberOptions) {
    this.#options = options;
  }

  /** Connects (retrying for as long as it takes, as every Lacquer client does) and subscribes. */
  start(): void {
    const { subscriber } = this.#options;
    // 'ready' follows every (re)connection, once node-redis has subscribed again: messages sent meanwhile are lost, so every wait looks again.
    subscriber.on('ready', () => {
      if (this.#subscribed) this.#wakeAll();
      else this.#subscribe();
    });
    subscriber.connect().catch((error: unknown) => this.#closed || this.#options.onError(error));
  }

  watch(key: string): FillWatch {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    let wakers = this.#watches.get(key);
    if (wakers === undefined) this.#watches.set(key, (wakers = new Set()));
    wakers.add(wake);
    if (this.#closed) wake();
    const watched = wakers;
    return {
      woken,
      stop: () => {
        watched.delete(wake);
        if (watched.size === 0 && this.#watches.get(key) === watched) this.#watches.delete(key);
      },
    };
  }

  /** Disconnects; waits still under way look again at once (and, Redis being gone for them too, end). */
  close(): void {
    this.#closed = true;
    if (this.#options.subscriber.isOpen) this.#options.subscriber.destroy();
    this.#wakeAll();
  }

  #subscribe(): void {
    this.#options.subscriber
      .subscribe(this.#options.channel, (key) => this.#wake(key))
      .then(() => {
        this.#subscribed = true;
        // A release published before the subscription took effect was not heard.
        this.#wakeAll();
      })
      // The connection dropped meanwhile: the next 'ready' tries again.
      .catch((error: unknown) => this.#closed || this.#options.onError(error));
  }

  #wake(key: string): void {
    for (const wake of this.#watches.get(key) ?? []) wake();
  }

  #wakeAll(): void {
    for (const wakers of this.#watches.values()) for (const wake of wakers) wake();
  }
}
