import { claimRetryMs, DirectoryHeldError, REFRESH_EVERY_MS, sharedLockLost, type LockInfo } from './disk-lock.js';
import { claimDirectory, unlockDirectory } from './disk-scan.js';

export interface DirectoryClaimOptions {
  readonly dir: string;
  /** Set in a worker: the pid of the primary whose lock it shares. The claim only checks that the lock names it (the primary may still be waiting for the directory). */
  readonly sharedWith?: number;
  /** Milliseconds between attempts while another holder keeps the directory, and between checks that a held lock is still ours (those at most REFRESH_EVERY_MS apart). Default CLAIM_RETRY_MS (5 s). */
  readonly retryMs?: number;
  /** A later attempt made the directory ours; `lock` is what the lock says (for a worker, its primary's). */
  readonly onClaimed: (lock: LockInfo) => void;
  /** A later attempt failed for a reason other than a holder (it is not tried again), or onClaimed or onLost threw. */
  readonly onFailed: (error: unknown) => void;
  /** The directory, ours until now, is another holder's (its lock names someone else): attempts start again. */
  readonly onLost?: (error: DirectoryHeldError) => void;
}

/**
 * Claims a cache directory for one disk store. While another holder keeps it
 * (a live process, or a lock whose liveness cannot be judged from here and
 * whose heartbeat is still fresh: see disk-lock.ts), the claim is tried again
 * on a timer until that lock is released or goes stale. The store serves
 * without its disk tier meanwhile rather than waiting: a container restarted
 * after a crash waits up to STALE_AFTER_MS for its own old lock, and requests
 * (and the waiting lists behind them) must not wait with it.
 *
 * Once held, the lock is watched: the holder's heartbeat (disk-lock.ts), or
 * for a worker a check every retryMs that the lock still names its primary.
 * A lock found naming another holder (taken over while this process was
 * stopped past the staleness window, say) means the directory is lost:
 * onLost hears of it and attempts start again.
 */
export class DirectoryClaim {
  /** The first attempt: resolves once the directory is ours, rejects with why it is not. */
  readonly first: Promise<LockInfo>;
  readonly #options: DirectoryClaimOptions;
  readonly #retryMs: number;
  #timer: NodeJS.Timeout | undefined;
  /** A worker's check that its primary still holds the lock. */
  #watch: NodeJS.Timeout | undefined;
  #attempt: Promise<void> | undefined;
  #attempts = 0;
  #stopped = false;

  constructor(options: DirectoryClaimOptions) {
    this.#options = options;
    this.#retryMs = options.retryMs ?? claimRetryMs();
    this.first = this.#claim();
    this.first.then(
      () => this.#watchShared(),
      (error: unknown) => {
        if (this.#worthRetrying(error)) this.#schedule();
      },
    );
  }

  /** Whether attempts go on in the background (the directory is held by another holder). */
  get retrying(): boolean {
    return !this.#stopped && (this.#timer !== undefined || this.#attempt !== undefined);
  }

  /** Attempts made in the background so far (diagnostics; tests wait on it). */
  get attempts(): number {
    return this.#attempts;
  }

  /** Stops trying (and watching); an attempt in flight that still takes the directory releases it at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#watch);
    this.#timer = undefined;
    this.#watch = undefined;
    await this.#attempt;
  }

  #claim(): Promise<LockInfo> {
    return claimDirectory(this.#options.dir, this.#options.sharedWith, { refreshMs: this.#checkMs, onLost: (error) => this.#lost(error) });
  }

  /** Between heartbeats (or a worker's checks) of a held lock: never longer than REFRESH_EVERY_MS, which the staleness window counts on, whatever the retry. */
  get #checkMs(): number {
    return Math.min(this.#retryMs, REFRESH_EVERY_MS);
  }

  #worthRetrying(error: unknown): boolean {
    return error instanceof DirectoryHeldError && !this.#stopped;
  }

  #lost(error: DirectoryHeldError): void {
    if (this.#stopped) return;
    clearInterval(this.#watch);
    this.#watch = undefined;
    try {
      this.#options.onLost?.(error);
    } catch (failure) {
      // Called from a timer: what it throws is reported, never an unhandled rejection (a crash). The directory is lost all the same.
      this.#options.onFailed(failure);
    }
    if (this.#timer === undefined && this.#attempt === undefined) this.#schedule();
  }

  #watchShared(): void {
    const primary = this.#options.sharedWith;
    if (primary === undefined || this.#stopped) return;
    clearInterval(this.#watch);
    let busy = false;
    this.#watch = setInterval(() => {
      if (busy) return;
      busy = true;
      // Only a lock naming someone else is a loss; none, or one that cannot be read now, is looked at again next time.
      sharedLockLost(this.#options.dir, primary)
        .then(
          (lost) => {
            if (lost !== undefined) this.#lost(lost);
          },
          () => undefined,
        )
        .finally(() => {
          busy = false;
        });
    }, this.#checkMs);
    this.#watch.unref();
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#attempt = this.#tryAgain()
        // onClaimed runs the store's takeover; whatever it throws is reported, never an unhandled rejection.
        .catch((error: unknown) => this.#options.onFailed(error))
        .finally(() => {
          this.#attempt = undefined;
        });
    }, this.#retryMs);
    // A wait for another holder never keeps the process alive.
    this.#timer.unref();
  }

  async #tryAgain(): Promise<void> {
    this.#attempts++;
    let lock: LockInfo;
    try {
      lock = await this.#claim();
    } catch (error) {
      if (this.#worthRetrying(error)) this.#schedule();
      else if (!this.#stopped) this.#options.onFailed(error);
      return;
    }
    if (this.#stopped) {
      // A worker's lock is its primary's, released when that exits.
      if (this.#options.sharedWith === undefined) await unlockDirectory(this.#options.dir);
      return;
    }
    this.#watchShared();
    this.#options.onClaimed(lock);
  }
}
