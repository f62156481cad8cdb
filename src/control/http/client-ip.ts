/**
 * The address a request comes from, for the public rate limit. Koa reads
 * X-Forwarded-For only when `app.proxy` is on (--trust-proxy), and with
 * `maxIpsCount = 1` it takes the entry the trusted proxy itself appended
 * (the right-most), not one the client could have written.
 */
import type { Context } from 'koa';
import { normalizeIp } from '../ip-address.js';

export function clientIp(ctx: Context): string {
  const raw = ctx.ip || ctx.req.socket.remoteAddress || 'unknown';
  return normalizeIp(raw) ?? raw;
}
