import type { RelayedPurge } from '../../purge/purger.js';
import type { DiskChange, DiskSharing } from '../store/disk.js';
import type { WorkerHooks, WorkerParts } from './hooks.js';
import { isPrimaryMessage, type PrimaryMessage, type WorkerMessage } from './messages.js';

export interface PrimaryLinkOptions {
  /** This worker's slot (1..N). */
  readonly slot: number;
  /** When the primary started (epoch ms), for the disk tier's boot scan. */
  readonly since: number;
  /** Adds `x-lacquer-worker: <slot>; pid=<pid>` to every response, proxy and admin. */
  readonly nameInResponses: boolean;
  /** Longest wait for the primary to answer (purge relay, scrape). The primary bounds its own waits well below it. */
  readonly answerTimeoutMs?: number;
  readonly log: (message: string, error?: unknown) => void;
}

/**
 * A worker's side of the IPC channel to its primary: purges made here are
 * relayed to every other worker (and answered once they applied them, or
 * once the primary stopped waiting), purges relayed from others are applied
 * here, disk tier changes go both ways, and a scrape of /metrics asks the
 * primary for every worker's metrics combined.
 */
export class PrimaryLink implements WorkerHooks {
  readonly diskSharing: DiskSharing;
  readonly #options: PrimaryLinkOptions;
  readonly #answerTimeoutMs: number;
  readonly #waiting = new Map<number, (message: PrimaryMessage | undefined) => void>();
  #nextId = 1;
  #parts: WorkerParts | undefined;
  /** Purges and disk changes that arrived before the parts existed; applied in order by attach. */
  #early: PrimaryMessage[] | undefined = [];

  constructor(options: PrimaryLinkOptions) {
    this.#options = options;
    this.#answerTimeoutMs = options.answerTimeoutMs ?? 15_000;
    this.diskSharing = {
      lockHolder: process.ppid,
      since: options.since,
      announce: (change: DiskChange) => this.#send({ lq: 'disk', change }),
    };
    process.on('message', (message: unknown) => {
      if (!isPrimaryMessage(message)) return;
      if (this.#early !== undefined && (message.lq === 'disk' || message.lq === 'apply')) this.#early.push(message);
      else this.#receive(message);
    });
    // Said before the store is built: from here on, every purge and disk change reaches this worker,
    // and what comes before its boot scan reads the directory is kept until attach.
    this.#send({ lq: 'hello' });
  }

  get namesResponses(): boolean {
    return this.#options.nameInResponses;
  }

  attach(parts: WorkerParts): void {
    this.#parts = parts;
    parts.purger.addRelay({ send: (purge) => this.#relay(purge) });
    if (this.#options.nameInResponses) {
      const name = `${this.#options.slot}; pid=${process.pid}`;
      for (const app of [parts.proxyApp, parts.adminApp]) {
        app.addHook('onRequest', (_request, reply, done) => {
          reply.header('x-lacquer-worker', name);
          done();
        });
      }
    }
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const message of early) this.#receive(message);
  }

  /** A property, so it can be handed on unbound. */
  readonly scrape = async (): Promise<string> => {
    const answer = await this.#ask((id) => ({ lq: 'scrape', id }));
    if (answer?.lq !== 'scraped') throw new Error(`the primary did not answer a metrics scrape within ${this.#answerTimeoutMs} ms`);
    return answer.text;
  };

  /** Tells the primary this worker listens. */
  up(urls: { proxyUrl: string; adminUrl: string; originUrl: string; exampleOrigin: boolean }): void {
    this.#send({ lq: 'up', ...urls });
  }

  /** Never rejects (the PurgeRelay contract): a primary that does not answer is logged and the purge answers anyway. */
  async #relay(purge: RelayedPurge): Promise<void> {
    const answer = await this.#ask((id) => ({ lq: 'purge', id, purge }));
    if (answer === undefined) this.#options.log(`purge relay: no answer from the primary within ${this.#answerTimeoutMs} ms; other workers may not have applied it`);
  }

  #receive(message: PrimaryMessage): void {
    const parts = this.#parts;
    switch (message.lq) {
      case 'disk':
        parts?.disk?.applyPeerChange(message.change);
        return;
      case 'apply':
        if (parts === undefined) {
          this.#send({ lq: 'applied', id: message.id });
          return;
        }
        parts.purger
          .applyRelayed(message.purge)
          .catch((error: unknown) => this.#options.log('relayed purge failed', error))
          .finally(() => this.#send({ lq: 'applied', id: message.id }));
        return;
      case 'collect':
        void (parts?.registry?.getMetricsAsJSON() ?? Promise.resolve([])).then(
          (metrics) => this.#send({ lq: 'metrics', id: message.id, metrics }),
          (error: unknown) => {
            this.#options.log('collecting metrics failed', error);
            this.#send({ lq: 'metrics', id: message.id, metrics: [] });
          },
        );
        return;
      case 'purged':
      case 'scraped':
        this.#waiting.get(message.id)?.(message);
        return;
    }
  }

  /** Sends a question and waits, bounded, for the answer with its id (undefined on timeout). */
  #ask(question: (id: number) => WorkerMessage): Promise<PrimaryMessage | undefined> {
    const id = this.#nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(undefined), this.#answerTimeoutMs);
      const settle = (answer: PrimaryMessage | undefined) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(answer);
      };
      this.#waiting.set(id, settle);
      if (!this.#send(question(id))) settle(undefined);
    });
  }

  #send(message: WorkerMessage): boolean {
    if (process.send === undefined || !process.connected) return false;
    // An error here means the primary is gone; the worker exits on 'disconnect'.
    process.send(message, undefined, undefined, () => undefined);
    return true;
  }
}
