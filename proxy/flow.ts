import { Readable } from 'node:stream';
import type { Config } from '../config/types.js';
import { EMPTY_DIRECTIVES, type Directives } from './cache/cache-control.js';
import { HitForMiss, Invalidations, WaitingList } from './cache/coalesce.js';
import { freshenedHeaders, notModifiedMatches, validatorHeaders } from './cache/conditional.js';
import { decideLookup, mayServeOnError, type LookupDecision, type MissReason } from './cache/decide.js';
import type { Entry } from './cache/entry.js';
import { isHostField, keyForLocation, requestTarget, type RequestTarget } from './cache/key.js';
import { judgeResponse, makeEntry, requestDirectives, type EntryPlan, type PolicyOptions, type StorageVerdict } from './cache/policy.js';
import { encodingBucket, variantOf } from './cache/vary.js';
import { cacheStatus, deliverEntry, plainDelivery, remainingTtl, withFacts, type CacheStatusFacts, type Delivery, type Outcome } from './deliver.js';
import { ProxyError, upstreamError } from './errors.js';
import { publishFlow, refreshPhase, requestOrigin } from './events.js';
import { headerValue, setField, tokenList, type HeaderMap } from './http/headers.js';
import type { FileBody } from './cache/body.js';
import { isStreamingStore, type BodyWriter, type MaybePromise, type Store } from './store/store.js';
import { streamToDisk } from './store/stream-fill.js';
import { arrivedWhole, bufferBody, type Origin, type OriginResponse } from './upstream/origin.js';
import { downstreamResponseHeaders, headersOriginSees, strippedFields, upstreamRequestHeaders } from './upstream/forward-headers.js';
import type { InterimListener } from './upstream/interim.js';

/**
 * The request flow of a caching proxy (see design.md §1):
 *
 *   recv → key → lookup → decide ─┬─ hit ............ deliver
 *                                 ├─ stale+swr ...... deliver stale, one background refresh
 *                                 ├─ revalidate ..... conditional fetch (coalesced), 304 freshens
 *                                 ├─ miss ........... one coalesced fetch, store, wake waiters
 *                                 ├─ hit-for-miss ... straight to the origin, no queueing
 *                                 └─ pass ........... straight to the origin (other methods)
 *
 * Decisions are pure functions in proxy/cache/; this class only carries
 * them out. If the store fails, the request passes through to the origin.
 */

export interface ProxyRequest {
  readonly method: string;
  /** Path and query as received. */
  readonly url: string;
  readonly headers: HeaderMap;
  /** The request body stream, when the method may carry one. */
  readonly body: Readable | null;
  readonly clientIp: string;
  readonly protocol: 'http' | 'https';
  /** Forwards the origin's interim (1xx) responses to this client, before the final one. */
  readonly onInterim?: InterimListener | undefined;
}

export interface FlowDependencies {
  readonly config: Config;
  readonly store: Store;
  readonly origin: Origin;
  /** Epoch milliseconds. */
  readonly clock: () => number;
  /** In [0, 1); drives lifetime jitter. */
  readonly random?: () => number;
  /** Called for failures that are answered but worth a log line (store errors, refresh failures). */
  readonly onError?: (error: unknown, context: string) => void;
}

/** What a fill hands to the requests that waited on it. */
type SharedFill =
  | { readonly kind: 'entry'; readonly entry: Entry; readonly facts: CacheStatusFacts; /** The invalidation stamp when the fill started. */ readonly since: number }
  /** The origin failed; waiters answer from stale content or with this error. */
  | { readonly kind: 'failed'; readonly error: ProxyError }
  /** The response could not be shared; each waiter asks the origin itself. */
  | { readonly kind: 'unshareable' };

interface FillResult {
  readonly shared: SharedFill;
  /** The leader's own answer (it may hold a stream only the leader can read). */
  readonly leader: Delivery;
}

const CONDITIONAL_FIELDS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since', 'if-range', 'range'];
/** Methods defined as safe (RFC 9110 §9.2.1); any other, including unknown ones, is unsafe (RFC 9111 §4.4). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PROPFIND', 'SEARCH', 'REPORT']);

export class Flow {
  readonly #deps: FlowDependencies;
  #config: Config;
  #policy: PolicyOptions;
  readonly #waiting = new WaitingList<FillResult>();
  readonly #hitForMiss = new HitForMiss();
  readonly invalidations = new Invalidations();
  /** Requests started over because the fill they joined was invalidated before they joined it. */
  readonly #restarted = new WeakSet<ProxyRequest>();
  readonly #via: string;
  readonly #strip: string[];

  constructor(deps: FlowDependencies) {
    this.#deps = deps;
    this.#config = deps.config;
    this.#policy = this.#policyFor(deps.config);
    this.#via = `1.1 ${deps.config.cache.name}`;
    this.#strip = strippedFields(deps.config.request.stripHeaders, deps.config.key.headers);
  }

  /**
   * Takes a reloaded config for the decisions made per request (lifetimes,
   * stale windows, hit-for-miss, request Cache-Control). The caller
   * (proxy/process/reload.ts) only changes fields that are read per request;
   * entries already stored keep the times computed when they were stored.
   */
  reconfigure(config: Config): void {
    this.#config = config;
    this.#policy = this.#policyFor(config);
  }

  #policyFor(config: Config): PolicyOptions {
    return { cache: config.cache, tags: config.tags, keepWithValidators: KEEP_WITH_VALIDATORS_MS, random: this.#deps.random ?? Math.random };
  }

  async handle(received: ProxyRequest): Promise<Delivery> {
    const host = received.headers['host'];
    if (host !== undefined && !isHostField(host)) return this.#error(new ProxyError('BAD_REQUEST', { detail: 'the Host header is not a host and port' }), { fwd: 'bypass' });
    // From here on, the request is what the origin will see: keys and variants never depend on a field it does not receive.
    const headers = headersOriginSees(received.headers, this.#strip);
    const request = headers === received.headers ? received : { ...received, headers };
    const target = requestTarget(request.url, request.headers, this.#config.key);
    if (request.method !== 'GET' && request.method !== 'HEAD') return this.#passUnsafe(request, target);

    const directives = this.#config.cache.honorRequestCacheControl ? requestDirectives(request.headers) : EMPTY_DIRECTIVES;
    // The memory tier answers at once; awaiting only a promise spares every request a turn of the microtask queue.
    // A Range or only-if-cached request never fills a miss (below): the store is told, so it takes no fill lock for it.
    const looked = this.#lookup(target.key, request.headers['range'] === undefined && !directives.has('only-if-cached'));
    const variants = looked instanceof Promise ? await looked : looked;
    if (variants === 'store-failed') return this.#forward(request, target, { fwd: 'bypass', detail: 'store-error' }, 'pass', false);
    const now = this.#deps.clock();
    const decision = decideLookup(variants, { headers: request.headers, directives, hasAuthorization: request.headers['authorization'] !== undefined }, now);

    if (decision.kind === 'hit') {
      return this.#deliver(decision.entry, request, decision.stale ? 'stale' : 'hit', { hit: true, ttl: remainingTtl(decision.entry, now) });
    }
    if (decision.kind === 'stale-while-revalidate') {
      this.#refreshInBackground(request, target, decision.entry);
      return this.#deliver(decision.entry, request, 'stale', { hit: true, ttl: remainingTtl(decision.entry, now), detail: 'stale-while-revalidate' });
    }
    if (directives.has('only-if-cached')) return this.#error(new ProxyError('ONLY_IF_CACHED'), { fwd: 'miss' });
    // Range requests are not stored or answered partially yet: a miss passes through with its Range intact.
    if (request.headers['range'] !== undefined && decision.kind === 'miss') {
      return this.#forward(request, target, { fwd: 'bypass', detail: 'range' }, 'pass', false);
    }
    if (decision.kind === 'miss' && this.#hitForMiss.has(target.key, now)) {
      return this.#forward(request, target, { fwd: 'miss', detail: 'hit-for-miss' }, 'hitmiss', true);
    }
    return this.#fetchCoalesced(request, target, decision, directives, variants?.[0]);
  }

  /** Whether a miss on `key` goes straight to the origin and stores nothing (hit-for-miss). */
  passesThrough(key: string): boolean {
    return this.#hitForMiss.has(key, this.#deps.clock());
  }

  /** Stops accepting background work; the store and origin are closed by their owner. */
  get inFlight(): number {
    return this.#waiting.size;
  }

  #lookup(key: string, willFill = true): MaybePromise<readonly Entry[] | undefined | 'store-failed'> {
    try {
      const found = this.#deps.store.get(key, willFill);
      return found instanceof Promise ? found.catch(this.#lookupFailed) : found;
    } catch (error) {
      return this.#lookupFailed(error);
    }
  }

  readonly #lookupFailed = (error: unknown): 'store-failed' => {
    this.#deps.onError?.(error, 'store lookup');
    return 'store-failed';
  };

  /** Joins the fill for this key (or starts it) and answers from its result. */
  async #fetchCoalesced(
    request: ProxyRequest,
    target: RequestTarget,
    decision: Exclude<LookupDecision, { kind: 'hit' | 'stale-while-revalidate' }>,
    directives: Directives,
    known: Entry | undefined,
  ): Promise<Delivery> {
    const stale = decision.kind === 'revalidate' ? decision.entry : undefined;
    const fwd = fwdReason(decision, directives);
    const waitKey = waitKeyOf(target.key, request.headers, stale ?? known);
    const pending = this.#waiting.pending(waitKey);
    if (pending === undefined) {
      try {
        const result = await this.#waiting.run(waitKey, () => this.#fill(request, target, stale, fwd));
        return result.leader;
      } finally {
        // Stored or not (not storable, origin failed): other instances waiting on this fill need not wait any longer.
        this.#deps.store.fillEnded?.(target.key);
      }
    }
    const joined = this.invalidations.stamp();
    publishFlow({ kind: 'coalesced', request });
    const shared = (await pending).shared;
    // Invalidated (purged) after the fill started and before this request joined it: the answer predates the purge, so start over, once.
    if (shared.kind === 'entry' && joined > shared.since && !this.invalidations.mayStore(shared.entry.key, shared.since, shared.entry.tags) && !this.#restarted.has(request)) {
      this.#restarted.add(request);
      return this.handle(request);
    }
    return this.#answerWaiter(request, target, shared, stale, fwd);
  }

  #answerWaiter(request: ProxyRequest, target: RequestTarget, shared: SharedFill, stale: Entry | undefined, fwd: CacheStatusFacts['fwd']): Promise<Delivery> | Delivery {
    const now = this.#deps.clock();
    if (shared.kind === 'entry' && this.#usableBy(shared.entry, request)) {
      return this.#deliver(shared.entry, request, outcomeOfFill(shared.facts), withFacts(shared.facts, { collapsed: true, ttl: remainingTtl(shared.entry, now) }));
    }
    if (shared.kind === 'failed') return this.#answerFailedWaiter(request, shared.error, stale, fwd);
    // Not shareable with this client: it asks the origin itself, at once.
    return this.#forward(request, target, { fwd, detail: 'not-shareable' }, 'miss', true);
  }

  async #answerFailedWaiter(request: ProxyRequest, error: ProxyError, stale: Entry | undefined, fwd: CacheStatusFacts['fwd']): Promise<Delivery> {
    const usable = stale === undefined ? undefined : await this.#staleForError(stale);
    if (usable !== undefined) return this.#serveStaleOnError(usable, request, error.message);
    return this.#error(error, { fwd, collapsed: true });
  }

  /** Whether an entry filled for another request may answer this one (its variant, RFC 9111 §3.5 for Authorization). */
  #usableBy(entry: Entry, request: ProxyRequest): boolean {
    if (request.headers['authorization'] !== undefined && !entry.sharedWithAuthorization) return false;
    return entry.variant === '' || variantOf(request.headers, entry.vary) === entry.variant;
  }

  /**
   * The one origin fetch for a key: a plain GET for a miss, or a conditional
   * GET carrying the stale entry's validators (RFC 9111 §4.3.1).
   */
  async #fill(request: ProxyRequest, target: RequestTarget, stale: Entry | undefined, fwd: CacheStatusFacts['fwd']): Promise<FillResult> {
    const stamp = this.invalidations.stamp();
    const headers = this.#upstreamHeaders(request, target);
    for (const name of CONDITIONAL_FIELDS) delete headers[name];
    if (stale !== undefined) Object.assign(headers, validatorHeaders(stale));

    const requestTime = this.#deps.clock();
    let response: OriginResponse;
    try {
      response = await requestOrigin(this.#deps.origin, request, { method: 'GET', path: target.upstreamPath, headers, body: null, onInterim: request.onInterim });
    } catch (error) {
      return this.#failedFill(upstreamError(error), request, stale, fwd);
    }
    const responseTime = this.#deps.clock();
    const responseHeaders = downstreamResponseHeaders(response.headers, this.#via);

    if (stale !== undefined && response.status === 304) {
      response.body.resume();
      // A 304 that changes Vary would leave the entry under a variant chosen by other fields: ask again without validators instead.
      if (notModifiedMatches(responseHeaders, stale) && sameVary(responseHeaders, stale)) return this.#freshen(request, stale, responseHeaders, requestTime, responseTime, stamp);
      // A 304 we cannot apply answers only our own validators: ask once more without them, never pass it on (RFC 9111 §4.3.3).
      return this.#fill(request, target, undefined, fwd);
    }
    const usable = stale !== undefined && response.status >= 500 ? await this.#staleForError(stale) : undefined;
    if (usable !== undefined) {
      response.body.resume();
      const delivery = this.#serveStaleOnError(usable, request, `origin status ${response.status}`, response.status);
      return { shared: { kind: 'entry', entry: usable, facts: { fwd: 'stale', fwdStatus: response.status, detail: 'stale-if-error' }, since: stamp }, leader: delivery };
    }

    const verdict = this.#judge(request, response.status, responseHeaders, requestTime, responseTime);
    const facts: CacheStatusFacts = { fwd, fwdStatus: response.status };
    if (!verdict.store) {
      // A reason that comes from this request (its no-store, its Authorization) says nothing of what others may be served.
      if (!REQUEST_REASONS.has(verdict.reason)) {
        if (stale !== undefined) this.#deleteVariant(stale);
        if (response.status < 500) this.#hitForMiss.mark(target.key, responseTime + this.#config.cache.hitForMissTtl);
      }
      const leader = this.#streamed(request, response, withFacts(facts, { detail: verdict.reason }), 'miss');
      return { shared: { kind: 'unshareable' }, leader };
    }
    return this.#storeAndDeliver(request, target, response, verdict.plan, facts, stamp);
  }

  /** Reads a storable response's body (up to the object limit), stores it and answers the leader. */
  async #storeAndDeliver(request: ProxyRequest, target: RequestTarget, response: OriginResponse, plan: EntryPlan, facts: CacheStatusFacts, stamp: number): Promise<FillResult> {
    const limit = this.#config.cache.memory.maxObjectSize;
    const declared = Number(headerValue(response.headers, 'content-length') ?? NaN);
    if (declared > limit) return this.#tooLarge(request, target, response, facts, [], response.body, { plan, stamp, declared });

    let buffered;
    try {
      buffered = await bufferBody(response.body, limit);
    } catch (error) {
      // The origin failed mid-body: nothing is stored, nothing truncated reaches a client.
      return this.#failedFill(upstreamError(error), request, undefined, facts.fwd);
    }
    if (!buffered.complete) return this.#tooLarge(request, target, response, facts, buffered.head, buffered.rest, { plan, stamp, declared });

    const now = this.#deps.clock();
    const entry = makeEntry(withBodyLength(plan, buffered.body), target.key, variantOf(request.headers, plan.vary), buffered.body, now, KEEP_WITH_VALIDATORS_MS);
    const stored = await this.#saveUnlessInvalidated(entry, stamp);
    if (stored) this.#hitForMiss.clear(target.key);
    const storedFacts = withFacts(facts, { stored });
    return {
      shared: { kind: 'entry', entry, facts: storedFacts, since: stamp },
      leader: this.#deliver(entry, request, 'miss', withFacts(storedFacts, { ttl: remainingTtl(entry, now) })),
    };
  }

  /**
   * An object above the memory limit: streamed to the leader, never buffered
   * whole. A tier that takes streams (disk) stores it as it passes; otherwise
   * it is not stored.
   */
  #tooLarge(request: ProxyRequest, target: RequestTarget, response: OriginResponse, facts: CacheStatusFacts, head: Buffer[], rest: Readable, fill: LargeFill): FillResult {
    const body = head.length === 0 ? rest : Readable.from(concatStreams(head, rest));
    const writer = this.#bodyWriter(fill.declared);
    if (writer !== undefined) {
      const teed = streamToDisk(body, writer, {
        stored: (file) => this.#storeStreamed(request, target, fill, file),
        failed: (error) => {
          // Not stored (too large after all, or the disk failed): later requests go straight to the origin, as for any too-large answer.
          this.#hitForMiss.mark(target.key, this.#deps.clock() + this.#config.cache.hitForMissTtl);
          this.#deps.onError?.(error, 'store write');
        },
      });
      return { shared: { kind: 'unshareable' }, leader: this.#streamed(request, { ...response, body: teed }, facts, 'miss') };
    }
    this.#hitForMiss.mark(target.key, this.#deps.clock() + this.#config.cache.hitForMissTtl);
    return { shared: { kind: 'unshareable' }, leader: this.#streamed(request, { ...response, body }, withFacts(facts, { detail: 'too-large' }), 'miss') };
  }

  #bodyWriter(declared: number): BodyWriter | undefined {
    const store = this.#deps.store;
    if (!isStreamingStore(store) || declared > store.maxObjectSize) return undefined;
    try {
      return store.createBodyWriter();
    } catch (error) {
      this.#deps.onError?.(error, 'store write');
      return undefined;
    }
  }

  /** A body streamed to disk is complete: its entry is stored unless the key was invalidated meanwhile. */
  async #storeStreamed(request: ProxyRequest, target: RequestTarget, fill: LargeFill, body: FileBody): Promise<void> {
    const entry = makeEntry(withBodyLength(fill.plan, body), target.key, variantOf(request.headers, fill.plan.vary), body, this.#deps.clock(), KEEP_WITH_VALIDATORS_MS);
    if (await this.#saveUnlessInvalidated(entry, fill.stamp)) this.#hitForMiss.clear(target.key);
  }

  /** A 304 from the origin: the stored entry's headers are updated and its lifetime renewed (RFC 9111 §4.3.4). */
  async #freshen(request: ProxyRequest, stale: Entry, notModified: HeaderMap, requestTime: number, responseTime: number, stamp: number): Promise<FillResult> {
    const merged = freshenedHeaders(stale.headers, notModified);
    const verdict = this.#judge(request, stale.status, merged, requestTime, responseTime);
    const facts: CacheStatusFacts = { fwd: 'stale', fwdStatus: 304 };
    const now = this.#deps.clock();
    if (!verdict.store) {
      // The origin no longer lets us keep it (unless the reason is this request's own): this request is still answered from the validated body.
      if (!REQUEST_REASONS.has(verdict.reason)) this.#deleteVariant(stale);
      const transient = makeEntry(transientPlan(stale, merged, requestTime, responseTime), stale.key, stale.variant, stale.body, now, 0);
      return { shared: { kind: 'unshareable' }, leader: this.#deliver(transient, request, 'revalidated', facts) };
    }
    const plan = verdict.plan.tags.length === 0 ? { ...verdict.plan, tags: stale.tags } : verdict.plan;
    const entry = makeEntry(plan, stale.key, stale.variant, stale.body, now, KEEP_WITH_VALIDATORS_MS);
    const stored = await this.#saveUnlessInvalidated(entry, stamp);
    const storedFacts = withFacts(facts, { stored });
    return {
      shared: { kind: 'entry', entry, facts: storedFacts, since: stamp },
      leader: this.#deliver(entry, request, 'revalidated', withFacts(storedFacts, { ttl: remainingTtl(entry, now) })),
    };
  }

  async #failedFill(error: ProxyError, request: ProxyRequest, stale: Entry | undefined, fwd: CacheStatusFacts['fwd']): Promise<FillResult> {
    this.#deps.onError?.(error, 'origin fetch');
    const usable = stale === undefined ? undefined : await this.#staleForError(stale);
    const leader = usable !== undefined ? this.#serveStaleOnError(usable, request, error.message) : this.#error(error, { fwd });
    return { shared: { kind: 'failed', error }, leader };
  }

  /**
   * The stale entry to serve because the origin failed (RFC 5861 §4), as the
   * store holds it now: a hard purge while the origin was being asked
   * removed it, and purged content is not served; a soft purge kept it
   * (marked stale), and stale-if-error still protects the origin.
   */
  async #staleForError(stale: Entry): Promise<Entry | undefined> {
    const variants = await this.#lookup(stale.key);
    // A store that cannot answer does not stop the one copy in hand from being used.
    const current = variants === 'store-failed' ? stale : variants?.find((entry) => entry.variant === stale.variant && entry.storedAt === stale.storedAt);
    return current !== undefined && mayServeOnError(current, this.#deps.clock()) ? current : undefined;
  }

  /** stale-while-revalidate: at most one refresh per key runs, whoever asks (RFC 5861 §3). */
  #refreshInBackground(request: ProxyRequest, target: RequestTarget, stale: Entry): void {
    const waitKey = waitKeyOf(target.key, request.headers, stale);
    if (this.#waiting.pending(waitKey) !== undefined) return;
    // The client has its answer already; interim responses of the refresh are not for it.
    const refreshRequest: ProxyRequest = { ...request, method: 'GET', body: null, onInterim: undefined };
    publishFlow({ kind: 'refresh', phase: 'started' });
    this.#waiting
      .run(waitKey, () => this.#fill(refreshRequest, target, stale, 'stale'))
      .then((result) => {
        publishFlow({ kind: 'refresh', phase: refreshPhase(result.leader) });
        discardBody(result.leader);
      })
      .catch((error: unknown) => {
        publishFlow({ kind: 'refresh', phase: 'failed' });
        this.#deps.onError?.(error, 'background refresh');
      });
  }

  /**
   * The client's own request, sent as it is (hit-for-miss, unshareable
   * waiters, bypasses). When allowed, a storable answer is still stored.
   */
  async #forward(request: ProxyRequest, target: RequestTarget, facts: CacheStatusFacts, outcome: Outcome, mayStore: boolean): Promise<Delivery> {
    const stamp = this.invalidations.stamp();
    const requestTime = this.#deps.clock();
    let response: OriginResponse;
    try {
      response = await requestOrigin(this.#deps.origin, request, { method: request.method, path: target.upstreamPath, headers: this.#upstreamHeaders(request, target), body: request.body, onInterim: request.onInterim });
    } catch (error) {
      const failure = upstreamError(error);
      this.#deps.onError?.(failure, 'origin fetch');
      return this.#error(failure, facts);
    }
    const responseTime = this.#deps.clock();
    const withStatus = withFacts(facts, { fwdStatus: response.status });
    const headers = downstreamResponseHeaders(response.headers, this.#via);
    if (mayStore && request.method === 'GET' && !isConditional(request.headers) && response.status !== 206) {
      const verdict = this.#judge(request, response.status, headers, requestTime, responseTime);
      if (verdict.store) return (await this.#storeAndDeliver(request, target, response, verdict.plan, withStatus, stamp)).leader;
    }
    return this.#streamed(request, response, withStatus, outcome, headers);
  }

  /** Methods other than GET/HEAD go straight through; a success invalidates what they changed (RFC 9111 §4.4). */
  async #passUnsafe(request: ProxyRequest, target: RequestTarget): Promise<Delivery> {
    const delivery = await this.#forward(request, target, { fwd: 'method' }, 'pass', false);
    if (!SAFE_METHODS.has(request.method) && delivery.status < 400 && delivery.outcome !== 'error') {
      await this.#invalidate(target.key);
      for (const name of ['location', 'content-location']) {
        const location = headerValue(delivery.headers, name);
        const key = location === undefined ? undefined : keyForLocation(location, target.host, this.#config.key, request.headers);
        if (key !== undefined && key !== target.key) await this.#invalidate(key);
      }
    }
    return delivery;
  }

  async #invalidate(key: string): Promise<void> {
    this.invalidations.invalidate(key);
    this.#hitForMiss.clear(key);
    try {
      await this.#deps.store.delete(key);
    } catch (error) {
      this.#deps.onError?.(error, 'store delete');
    }
  }

  #judge(request: ProxyRequest, status: number, headers: HeaderMap, requestTime: number, responseTime: number): StorageVerdict {
    return judgeResponse({ requestMethod: 'GET', requestHeaders: request.headers, status, headers, requestTime, responseTime }, this.#policy);
  }

  /**
   * Stores an entry fetched since `stamp` unless a purge has named it since.
   * Checked again once the write is done: a purge that ran while the store
   * was still writing (the disk tier writes asynchronously) could not find
   * the entry to remove it, so the entry is removed here instead.
   */
  async #saveUnlessInvalidated(entry: Entry, stamp: number): Promise<boolean> {
    if (!this.invalidations.mayStore(entry.key, stamp, entry.tags)) return false;
    if (!(await this.#save(entry))) return false;
    if (this.invalidations.mayStore(entry.key, stamp, entry.tags)) return true;
    this.#deleteVariant(entry);
    return false;
  }

  async #save(entry: Entry): Promise<boolean> {
    try {
      await this.#deps.store.set(entry);
      return true;
    } catch (error) {
      this.#deps.onError?.(error, 'store write');
      return false;
    }
  }

  #deleteVariant(entry: Entry): void {
    const store = this.#deps.store as Store & { deleteVariant?(entry: Entry): unknown };
    const failed = (error: unknown) => this.#deps.onError?.(error, 'store delete');
    try {
      const done = store.deleteVariant !== undefined ? store.deleteVariant(entry) : store.delete(entry.key);
      if (done instanceof Promise) done.catch(failed);
    } catch (error) {
      failed(error);
    }
  }

  #upstreamHeaders(request: ProxyRequest, target: RequestTarget): HeaderMap {
    const headers = upstreamRequestHeaders(request.headers, {
      clientIp: request.clientIp,
      protocol: request.protocol,
      host: target.host,
      via: this.#via,
      upstreamHost: this.#config.origin.preserveHost ? target.host : this.#deps.origin.host,
      strip: this.#strip,
      surrogateCapability: `${this.#config.cache.name}="Surrogate/1.0"`,
    });
    // Whatever path a GET takes, an answer that may be stored must be one every client of its encoding bucket can decode.
    if (request.method === 'GET' || request.method === 'HEAD') headers['accept-encoding'] = encodingBucket(headerValue(request.headers, 'accept-encoding'));
    return headers;
  }

  #deliver(entry: Entry, request: ProxyRequest, outcome: Outcome, facts: CacheStatusFacts): Delivery {
    return deliverEntry(entry, request, this.#deps.clock(), outcome, cacheStatus(this.#config.cache.name, facts));
  }

  #serveStaleOnError(stale: Entry, request: ProxyRequest, why: string, fwdStatus?: number): Delivery {
    this.#deps.onError?.(new Error(why), 'served stale because the origin failed');
    const facts: CacheStatusFacts = { fwd: 'stale', ttl: remainingTtl(stale, this.#deps.clock()), detail: 'stale-if-error' };
    return this.#deliver(stale, request, 'stale', fwdStatus === undefined ? facts : withFacts(facts, { fwdStatus }));
  }

  /** `headers`: the response's headers as downstreamResponseHeaders gives them, when the caller has them already (they are changed here). */
  #streamed(request: ProxyRequest, response: OriginResponse, facts: CacheStatusFacts, outcome: Outcome, headers = downstreamResponseHeaders(response.headers, this.#via)): Delivery {
    if (this.#config.tags.strip) for (const name of this.#config.tags.headers) delete headers[name];
    delete headers['surrogate-control'];
    headers['cache-status'] = cacheStatus(this.#config.cache.name, facts);
    if (request.method === 'HEAD' || response.status === 304 || response.status === 204) {
      response.body.resume();
      return { status: response.status, headers, body: null, outcome };
    }
    const whole = arrivedWhole(response.body, headerValue(headers, 'content-length'));
    return { status: response.status, headers, body: whole ?? response.body, outcome };
  }

  #error(error: ProxyError, facts: CacheStatusFacts): Delivery {
    return plainDelivery(error.status, error.message, 'error', cacheStatus(this.#config.cache.name, withFacts(facts, { detail: error.code.toLowerCase() })));
  }
}

function isConditional(headers: HeaderMap): boolean {
  for (const name of CONDITIONAL_FIELDS) if (headers[name] !== undefined) return true;
  return false;
}

/** Reasons not to store that come from the request, not the response: the stored entry stays good for others. */
const REQUEST_REASONS: ReadonlySet<string> = new Set(['request-no-store', 'authorization']);

/** Whether a 304 keeps the stored entry's Vary (a 304 without Vary does). */
function sameVary(notModified: HeaderMap, stale: Entry): boolean {
  if (notModified['vary'] === undefined) return true;
  const vary = tokenList(notModified, 'vary');
  return vary.length === stale.vary.length && vary.every((name, i) => name === stale.vary[i]);
}

/** A stale entry with validators is kept this long after its last usable moment, for conditional revalidation. */
const KEEP_WITH_VALIDATORS_MS = 60 * 60 * 1000;

/** Fills are shared per key, and per variant when the key is known to vary. */
function waitKeyOf(key: string, headers: HeaderMap, known: Entry | undefined): string {
  if (known === undefined || known.vary.length === 0) return key;
  return `${key}\n${variantOf(headers, known.vary)}`;
}

function fwdReason(decision: { kind: 'miss'; reason: MissReason } | { kind: 'revalidate'; entry: Entry }, directives: Directives): CacheStatusFacts['fwd'] {
  if (decision.kind === 'miss') return decision.reason;
  return directives.has('no-cache') || directives.has('max-age') || directives.has('min-fresh') ? 'request' : 'stale';
}

function outcomeOfFill(facts: CacheStatusFacts): Outcome {
  if (facts.detail === 'stale-if-error') return 'stale';
  return facts.fwdStatus === 304 ? 'revalidated' : 'miss';
}

/** What a too-large response needs to be stored once streamed. */
interface LargeFill {
  readonly plan: EntryPlan;
  readonly stamp: number;
  /** Content-Length from the origin; NaN when it sent none. */
  readonly declared: number;
}

/** The stored body's real length replaces whatever framing the origin used. */
function withBodyLength(plan: EntryPlan, body: { readonly length: number }): EntryPlan {
  if (plan.status === 204 || plan.status === 304) return plan;
  return { ...plan, headers: { ...plan.headers, 'content-length': String(body.length) } };
}

/** A one-request view of a validated response that may not be stored. */
function transientPlan(stale: Entry, headers: HeaderMap, requestTime: number, responseTime: number): EntryPlan {
  const kept: Record<string, string | string[]> = {};
  for (const name in headers) if (headers[name] !== undefined) setField(kept, name, headers[name]!);
  return {
    status: stale.status,
    headers: kept,
    vary: stale.vary,
    lifetime: { ms: 0, source: 'none' },
    initialAge: 0,
    requestTime,
    responseTime,
    staleWhileRevalidate: 0,
    staleIfError: 0,
    noCache: true,
    mustRevalidate: true,
    immutable: false,
    sharedWithAuthorization: false,
    tags: stale.tags,
  };
}

async function* concatStreams(head: Buffer[], rest: Readable): AsyncGenerator<Buffer> {
  yield* head;
  for await (const chunk of rest) yield chunk as Buffer;
}

function discardBody(delivery: Delivery): void {
  if (delivery.body instanceof Readable) delivery.body.resume();
}
