/**
 * The address a request comes from, for the rate limits. Koa reads
 * X-Forwarded-For only when `app.proxy` is on (--trust-proxy), and with
 * `maxIpsCount = 1` it takes the entry the trusted proxy itself appended
 * (the right-most), not one the client could have written.
 */
import type { Context } from 'koa';
import { formatIp, normalizeIp, parseIp } from '../ip-address.js';

export function clientIp(ctx: Context): string {
  const raw = ctx.ip || ctx.req.socket.remoteAddress || 'unknown';
  return normalizeIp(raw) ?? raw;
}

/** Host bits of an IPv6 /64: one subscriber gets a whole /64 (RFC 6177), so it is the unit a limit can count. */
const IPV6_HOST_MASK = (1n << 64n) - 1n;

/**
 * The key the limits count a source under: an IPv4 address as is, an IPv6
 * address as its /64 (`2001:db8:1:2::/64`) — otherwise one host walking
 * through the 2^64 addresses of its own prefix would get a fresh budget with
 * every request (the same rule the WireGuard handshake limiter uses).
 */
export function sourceKey(ip: string): string {
  const v = parseIp(ip);
  if (!v) return ip;
  if (v.version === 4) return formatIp(4, v.value);
  return `${formatIp(6, v.value & ~IPV6_HOST_MASK)}/64`;
}

/** The request's source under the limits' keying (see sourceKey). */
export function clientSource(ctx: Context): string {
  return sourceKey(clientIp(ctx));
}
