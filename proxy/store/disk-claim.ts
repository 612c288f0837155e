import { CLAIM_RETRY_MS, DirectoryHeldError } from './disk-lock.js';
import { claimDirectory, unlockDirectory } from './disk-scan.js';

export interface DirectoryClaimOptions {
  readonly dir: string;
  /** Set in a worker: the pid of the primary whose lock it shares. The claim only checks that the lock names it (the primary may still be waiting for the directory). */
  readonly sharedWith?: number;
  /** Milliseconds between attempts while another holder keeps the directory. Default CLAIM_RETRY_MS (5 s). */
  readonly retryMs?: number;
  /** A later attempt made the directory ours. */
  readonly onClaimed: () => void;
  /** A later attempt failed for a reason other than a holder (it is not tried again). */
  readonly onFailed: (error: unknown) => void;
}

/**
 * Claims a cache directory for one disk store. While another holder keeps it
 * (a live process, or a lock whose liveness cannot be judged from here and
 * whose heartbeat is still fresh: see disk-lock.ts), the claim is tried again
 * on a timer until that lock is released or goes stale. The store serves
 * without its disk tier meanwhile rather than waiting: a container restarted
 * after a crash waits up to STALE_AFTER_MS for its own old lock, and requests
 * (and the waiting lists behind them) must not wait with it.
 */
export class DirectoryClaim {
  /** The first attempt: resolves once the directory is ours, rejects with why it is not. */
  readonly first: Promise<void>;
  readonly #options: DirectoryClaimOptions;
  #timer: NodeJS.Timeout | undefined;
  #attempt: Promise<void> | undefined;
  #attempts = 0;
  #stopped = false;

  constructor(options: DirectoryClaimOptions) {
    this.#options = options;
    this.first = claimDirectory(options.dir, options.sharedWith);
    this.first.then(
      () => undefined,
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

  /** Stops trying; an attempt in flight that still takes the directory releases it at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#attempt;
  }

  #worthRetrying(error: unknown): boolean {
    return error instanceof DirectoryHeldError && !this.#stopped;
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#attempt = this.#tryAgain().finally(() => {
        this.#attempt = undefined;
      });
    }, this.#options.retryMs ?? CLAIM_RETRY_MS);
    // A wait for another holder never keeps the process alive.
    this.#timer.unref();
  }

  async #tryAgain(): Promise<void> {
    this.#attempts++;
    try {
      await claimDirectory(this.#options.dir, this.#options.sharedWith);
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
    this.#options.onClaimed();
  }
}
