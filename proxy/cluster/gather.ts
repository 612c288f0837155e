/**
 * Answers awaited from several workers at once: a question settles when
 * every worker asked has answered, has died, or the wait ran out, so a dead
 * or stuck worker delays it by at most `timeoutMs` and never hangs it.
 */
export interface Gathered<T> {
  /** Answers by worker id. */
  readonly answers: ReadonlyMap<number, T>;
  /** Workers asked that did not answer (dead, or too slow). */
  readonly missing: readonly number[];
}

interface Pending<T> {
  readonly waiting: Set<number>;
  readonly answers: Map<number, T>;
  readonly settle: () => void;
}

export class Gatherer<T> {
  readonly #pending = new Map<number, Pending<T>>();
  #nextId = 1;

  /** Asks `workers` by calling `send(worker, id)` for each; resolves as described above. */
  ask(workers: readonly number[], timeoutMs: number, send: (worker: number, id: number) => boolean): Promise<Gathered<T>> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const answers = new Map<number, T>();
      const waiting = new Set(workers);
      let timer: NodeJS.Timeout | undefined;
      const settle = () => {
        if (!this.#pending.has(id)) return;
        this.#pending.delete(id);
        clearTimeout(timer);
        resolve({ answers, missing: workers.filter((worker) => !answers.has(worker)) });
      };
      this.#pending.set(id, { waiting, answers, settle });
      for (const worker of workers) if (!send(worker, id)) waiting.delete(worker);
      if (waiting.size === 0) return settle();
      timer = setTimeout(settle, timeoutMs);
    });
  }

  answer(id: number, worker: number, value: T): void {
    const pending = this.#pending.get(id);
    if (pending === undefined || !pending.waiting.delete(worker)) return;
    pending.answers.set(worker, value);
    if (pending.waiting.size === 0) pending.settle();
  }

  /** A worker died: nothing waits for it any longer. */
  gone(worker: number): void {
    for (const pending of [...this.#pending.values()]) {
      if (pending.waiting.delete(worker) && pending.waiting.size === 0) pending.settle();
    }
  }
}
