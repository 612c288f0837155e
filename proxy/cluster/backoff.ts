/**
 * When to restart a worker that died: at once the first time, then after
 * doubling delays up to a cap, so a worker that dies at every start does
 * not spin the machine. A worker that lived `stableMs` resets the count.
 */
export interface BackoffOptions {
  /** Delay after the second death in a row. Default 100 ms. */
  readonly baseMs?: number;
  /** Longest delay. Default 10 s. */
  readonly maxMs?: number;
  /** A worker that lived this long counts as healthy. Default 30 s. */
  readonly stableMs?: number;
}

export interface RestartDecision {
  readonly delayMs: number;
  /** Deaths in a row, this one included. */
  readonly failures: number;
}

export function restartDelay(previousFailures: number, livedMs: number, options: BackoffOptions = {}): RestartDecision {
  const base = options.baseMs ?? 100;
  const max = options.maxMs ?? 10_000;
  const stable = options.stableMs ?? 30_000;
  const failures = livedMs >= stable ? 1 : previousFailures + 1;
  const delayMs = failures <= 1 ? 0 : Math.min(max, base * 2 ** (failures - 2));
  return { delayMs, failures };
}

/** The number of workers `workers: auto | N` asks for. */
export function workerCount(workers: number | 'auto', cores: number): number {
  return workers === 'auto' ? Math.max(1, cores) : workers;
}
