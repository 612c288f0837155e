import { channel } from 'node:diagnostics_channel';
import type { Delivery, Outcome } from './deliver.js';
import type { ProxyRequest } from './flow.js';
import type { Origin, OriginRequest, OriginResponse } from './upstream/origin.js';

/**
 * The typed events the proxy publishes for observers (metrics, access logs),
 * on Node's diagnostics_channel so that proxy/ depends on nothing that
 * listens (design.md §3). Every publish is guarded by `hasSubscribers`, so
 * with nobody listening the hit path builds no event objects at all.
 */

/** Published once per answered request. */
export interface RequestEvent {
  readonly method: string;
  readonly url: string;
  readonly status: number;
  readonly outcome: Outcome;
  /** From the request's arrival to the moment its answer was ready to send. */
  readonly durationMs: number;
  /** The request as the flow saw it: flow events name the same object, so observers can join them. */
  readonly request: ProxyRequest;
  readonly delivery: Delivery;
}

/** Facts from inside the flow that a request's outcome alone does not show. */
export type FlowEvent =
  /** One request to the origin; `status` is null when no response arrived (refused, reset, timed out). */
  | { readonly kind: 'origin'; readonly request: ProxyRequest; readonly status: number | null; readonly durationMs: number }
  /** A request that waited on another request's origin fetch instead of making its own. */
  | { readonly kind: 'coalesced'; readonly request: ProxyRequest }
  /** A stale-while-revalidate background refresh started, or ended with the origin failing. */
  | { readonly kind: 'refresh'; readonly phase: 'started' | 'succeeded' | 'failed' };

export const requestChannel = channel('lacquer:request');
export const flowChannel = channel('lacquer:flow');

/** Sends one request to the origin, publishing how long it took when someone listens. */
export function requestOrigin(origin: Origin, request: ProxyRequest, originRequest: OriginRequest): Promise<OriginResponse> {
  if (!flowChannel.hasSubscribers) return origin.request(originRequest);
  const started = performance.now();
  return origin.request(originRequest).then(
    (response) => {
      publishFlow({ kind: 'origin', request, status: response.status, durationMs: performance.now() - started });
      return response;
    },
    (error: unknown) => {
      publishFlow({ kind: 'origin', request, status: null, durationMs: performance.now() - started });
      throw error;
    },
  );
}

/** Whether a stale answer stood in for an origin that failed (RFC 5861 §4), as its Cache-Status says. */
export function staleBecauseOriginFailed(delivery: Delivery): boolean {
  if (delivery.outcome !== 'stale') return false;
  const status = delivery.headers['cache-status'];
  return typeof status === 'string' && status.includes('detail=stale-if-error');
}

/** Body bytes a delivery sends: exact for stored bodies; a streamed body counts its declared Content-Length (0 if none). */
export function deliveredBodyBytes(delivery: Delivery): number {
  const body = delivery.body;
  if (body === null) return 0;
  if (Buffer.isBuffer(body)) return body.length;
  const declared = Number(delivery.headers['content-length']);
  return Number.isFinite(declared) && declared > 0 ? declared : 0;
}

export function publishFlow(event: FlowEvent): void {
  if (flowChannel.hasSubscribers) flowChannel.publish(event);
}

/**
 * How a background refresh ended, judged from the answer it produced: an
 * error, a stale entry served in the origin's place, or a 5xx all mean the
 * origin did not refresh the entry.
 */
export function refreshPhase(answer: Delivery | undefined): 'succeeded' | 'failed' {
  if (answer === undefined || answer.outcome === 'error' || answer.outcome === 'stale' || answer.status >= 500) return 'failed';
  return 'succeeded';
}
