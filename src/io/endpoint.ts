/**
 * UDP endpoints as fixed-size byte records, so a received batch carries the
 * source of every datagram without creating objects, and roaming detection is
 * a 20-byte comparison.
 *
 *   byte 0     address family: 4 or 6 (0 = none)
 *   byte 1     reserved, 0
 *   bytes 2-3  UDP port, big-endian
 *   bytes 4-19 address: IPv4 in bytes 4-7 (rest zero), IPv6 in bytes 4-19
 *
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d), as a dual-stack socket reports
 * them, are stored as family 4 so that one peer has one identity.
 */
import { isIP } from 'node:net';
import { formatIPv4, formatIPv6, isV4Mapped, parseIPv4, parseIPv6 } from './ip-address.js';

export const ENDPOINT_SIZE = 20;

export interface Endpoint {
  readonly family: 4 | 6;
  readonly address: string;
  readonly port: number;
}

/** Writes an endpoint record into `out` at `at`. Throws TypeError for a malformed address. */
export function encodeEndpoint(ep: Endpoint, out: Uint8Array, at = 0): void {
  out.fill(0, at, at + ENDPOINT_SIZE);
  if (!Number.isInteger(ep.port) || ep.port < 0 || ep.port > 65535) throw new RangeError(`bad port ${ep.port}`);
  out[at + 2] = ep.port >>> 8;
  out[at + 3] = ep.port & 0xff;
  const v4 = parseIPv4(ep.address);
  if (v4) {
    out[at] = 4;
    out.set(v4, at + 4);
    return;
  }
  const v6 = parseIPv6(ep.address);
  if (!v6) throw new TypeError(`not an IP address: ${ep.address}`);
  if (isV4Mapped(v6)) {
    out[at] = 4;
    out.set(v6.subarray(12), at + 4);
  } else {
    out[at] = 6;
    out.set(v6, at + 4);
  }
}

export function decodeEndpoint(rec: Uint8Array, at = 0): Endpoint | null {
  const fam = rec[at];
  const port = (rec[at + 2]! << 8) | rec[at + 3]!;
  if (fam === 4) return { family: 4, address: formatIPv4(rec.subarray(at + 4, at + 8)), port };
  if (fam === 6) return { family: 6, address: formatIPv6(rec.subarray(at + 4, at + 20)), port };
  return null;
}

/** "1.2.3.4:51820" or "[fe80::1]:51820", as wg(8) prints endpoints. */
export function formatEndpoint(ep: Endpoint): string {
  return ep.family === 6 ? `[${ep.address}]:${ep.port}` : `${ep.address}:${ep.port}`;
}

/** Parses "host:port" / "[v6]:port" with a literal IP; null when malformed. */
export function parseEndpoint(s: string): Endpoint | null {
  let host: string;
  let portStr: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s[close + 1] !== ':') return null;
    host = s.slice(1, close);
    portStr = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) return null;
    host = s.slice(0, colon);
    portStr = s.slice(colon + 1);
    if (host.includes(':')) return null; // an IPv6 address needs brackets
  }
  if (!/^\d{1,5}$/.test(portStr)) return null;
  const port = Number(portStr);
  if (port > 65535) return null;
  const pct = host.indexOf('%'); // zone id: ignored
  if (pct >= 0) host = host.slice(0, pct);
  const fam = isIP(host);
  if (fam === 4) return { family: 4, address: host, port };
  if (fam === 6) {
    const b = parseIPv6(host)!;
    if (isV4Mapped(b)) return { family: 4, address: formatIPv4(b.subarray(12)), port };
    return { family: 6, address: formatIPv6(b), port };
  }
  return null;
}
