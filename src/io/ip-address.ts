/**
 * IP addresses and prefixes as text, once for the program: dotted quads,
 * IPv6 in RFC 5952 canonical form (§4: lowercase, no leading zeros, the
 * longest run of two or more zero groups compressed, the first on a tie;
 * §5: IPv4-mapped addresses in mixed notation), and "ADDRESS/LENGTH"
 * prefixes as wg(8) and the UAPI write allowed IPs. It lives in io, the
 * lowest layer that prints addresses (endpoint records); the UAPI, the exit
 * server and the control plane's address pools use it from here.
 */
import { isIP } from 'node:net';

/** A dotted quad as 4 bytes; null when malformed. */
export function parseIPv4(s: string): Uint8Array | null {
  if (isIP(s) !== 4) return null;
  return Uint8Array.from(s.split('.').map(Number));
}

/** IPv6 text (also with a trailing dotted quad) as 16 bytes; null when malformed. */
export function parseIPv6(s: string): Uint8Array | null {
  if (isIP(s) !== 6) return null;
  const out = new Uint8Array(16);
  let str = s;
  // Trailing dotted quad: ::ffff:1.2.3.4
  const lastColon = str.lastIndexOf(':');
  const tail = str.slice(lastColon + 1);
  let tailBytes: number[] = [];
  if (tail.includes('.')) {
    tailBytes = tail.split('.').map(Number);
    str = str.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = str.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const r = rest !== undefined ? (rest ? rest.split(':') : []) : [];
  const groups = rest !== undefined ? [...h, ...Array(8 - h.length - r.length).fill('0'), ...r] : h;
  if (groups.length !== 8) return null;
  for (let i = 0; i < 8; i++) {
    const v = parseInt(groups[i]!, 16);
    out[2 * i] = v >>> 8;
    out[2 * i + 1] = v & 0xff;
  }
  if (tailBytes.length === 4) out.set(tailBytes, 12);
  return out;
}

export function formatIPv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952 canonical text form. */
export function formatIPv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[2 * i]! << 8) | b[2 * i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart === 0 && bestLen === 5 && g[5] === 0xffff) return `::ffff:${formatIPv4(b.subarray(12))}`;
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Whether 16 address bytes are an IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 §2.5.5.2). */
export function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** An IP prefix as the allowed-IPs table takes it. */
export interface Prefix {
  family: 4 | 6;
  address: Uint8Array;
  cidr: number;
}

/** "10.0.0.0/8", "fd00::/64" (the prefix length is required, as in wireguard-go); null when malformed. */
export function parsePrefix(s: string): Prefix | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const addr = s.slice(0, slash);
  const v4 = parseIPv4(addr);
  const bytes = v4 ?? parseIPv6(addr);
  if (!bytes) return null;
  const max = v4 ? 32 : 128;
  const c = s.slice(slash + 1);
  if (!/^\d{1,3}$/.test(c) || Number(c) > max) return null;
  return { family: v4 ? 4 : 6, address: bytes, cidr: Number(c) };
}

export function formatPrefix(family: 4 | 6, address: Uint8Array, cidr: number): string {
  return `${family === 4 ? formatIPv4(address) : formatIPv6(address)}/${cidr}`;
}
