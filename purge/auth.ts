import { createHash, timingSafeEqual } from 'node:crypto';
import { BlockList, isIP } from 'node:net';

/**
 * Who may purge (and use other operator endpoints that reuse this check):
 *
 *   a configured token  → `Authorization: Bearer <token>` is required, unless
 *                          the client's address is in `allow`;
 *   no token configured → loopback clients and `allow` only.
 *
 * A missing or malformed credential is 401 (with a Bearer challenge,
 * RFC 6750 §3); a wrong token or a client not allowed is 403. A pure
 * decision: the caller sends the answer.
 */

export type AuthDecision =
  | { readonly kind: 'allowed'; readonly by: 'token' | 'address' | 'loopback' }
  | { readonly kind: 'denied'; readonly status: 401 | 403; readonly reason: string };

export interface AuthRequest {
  /** The Authorization header as received, if any. */
  readonly authorization: string | undefined;
  /** The client's socket address. */
  readonly clientIp: string;
  /**
   * The request came through another proxy (it carries X-Forwarded-For,
   * Forwarded or Via): its socket address is that proxy's, so loopback says
   * nothing about who sent it.
   */
  readonly relayed?: boolean;
}

export interface Authorizer {
  authorize(request: AuthRequest): AuthDecision;
}

export interface AuthOptions {
  readonly token: string | null;
  /** IP addresses or CIDR ranges allowed without the token. */
  readonly allow: readonly string[];
}

export function createAuthorizer(options: AuthOptions): Authorizer {
  const allowed = blockListOf(options.allow);
  const loopback = blockListOf(['127.0.0.0/8', '::1/128']);
  // Compared as digests: equal lengths for timingSafeEqual, and the token's length is not revealed by timing either.
  const expected = options.token === null ? undefined : digest(options.token);

  return {
    authorize({ authorization, clientIp, relayed = false }) {
      const ip = unmapped(clientIp);
      if (matches(allowed, ip)) return { kind: 'allowed', by: 'address' };
      if (expected === undefined) {
        if (relayed && matches(loopback, ip)) {
          return { kind: 'denied', status: 403, reason: 'this request came through another proxy (X-Forwarded-For, Forwarded or Via), so its loopback address does not allow purging; configure a purge token' };
        }
        return matches(loopback, ip)
          ? { kind: 'allowed', by: 'loopback' }
          : { kind: 'denied', status: 403, reason: 'purging is allowed only from loopback or the configured addresses (no purge token is configured)' };
      }
      const presented = bearerToken(authorization);
      if (presented === undefined) return { kind: 'denied', status: 401, reason: 'a bearer token is required (Authorization: Bearer <token>)' };
      return timingSafeEqual(digest(presented), expected) ? { kind: 'allowed', by: 'token' } : { kind: 'denied', status: 403, reason: 'the bearer token is not valid' };
    },
  };
}

/** The token of `Bearer <token>` (scheme case-insensitive, RFC 9110 §11.1), or undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  const match = /^Bearer +(\S+) *$/i.exec(authorization ?? '');
  return match?.[1];
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d. */
function unmapped(ip: string): string {
  return ip.toLowerCase().startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

function blockListOf(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const [address, bits] = range.split('/');
    const family = isIP(address ?? '') === 6 ? 'ipv6' : 'ipv4';
    if (bits === undefined) list.addAddress(address!, family);
    else list.addSubnet(address!, Number(bits), family);
  }
  return list;
}

function matches(list: BlockList, ip: string): boolean {
  const family = isIP(ip);
  if (family === 0) return false;
  return list.check(ip, family === 6 ? 'ipv6' : 'ipv4');
}
