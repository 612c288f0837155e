import { setField, type HeaderMap } from '../http/headers.js';
import { withoutHopByHop } from './forward-headers.js';

/**
 * Interim (1xx) responses from the origin (RFC 9110 §15.2). They are never
 * stored (RFC 9111 §3: only final responses are), but a proxy forwards the
 * ones that mean something to the client while the final response is on
 * its way: 102 Processing (RFC 2518) and 103 Early Hints (RFC 8297).
 * 100 Continue answers our own connection's Expect, and 101 is an upgrade
 * we do not proxy, so neither is forwarded.
 */
export type InterimForward =
  | { readonly kind: 'processing' }
  | { readonly kind: 'early-hints'; readonly hints: Record<string, string | string[]> }
  | { readonly kind: 'drop' };

/** Called by the origin transport for each interim response, before the final one. */
export type InterimListener = (status: number, headers: HeaderMap) => void;

export function interimToForward(status: number, headers: HeaderMap): InterimForward {
  if (status === 102) return { kind: 'processing' };
  if (status !== 103) return { kind: 'drop' };
  const hints: Record<string, string | string[]> = {};
  const kept = withoutHopByHop(headers);
  for (const name in kept) if (kept[name] !== undefined) setField(hints, name, kept[name]!);
  // Early hints without a Link field hint at nothing (RFC 8297 §2).
  if (hints['link'] === undefined) return { kind: 'drop' };
  return { kind: 'early-hints', hints };
}
