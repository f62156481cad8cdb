/**
 * IP addresses and CIDR pools as numbers, for address allocation and IP
 * attribution. Addresses are validated with node:net first, then converted
 * to a bigint; output is canonical (dotted quad; RFC 5952 for IPv6), so the
 * same address always compares equal as a string in SQLite.
 */
import { isIP } from 'node:net';

export type IpVersion = 4 | 6;

export interface IpValue {
  version: IpVersion;
  value: bigint;
}

export interface Cidr {
  version: IpVersion;
  /** The network address (host bits zero). */
  base: bigint;
  prefix: number;
}

const BITS: Record<IpVersion, number> = { 4: 32, 6: 128 };

function parseV4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseV6(s: string): bigint {
  let head = s;
  let tailV4: bigint | null = null;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) !== -1) {
    tailV4 = parseV4(s.slice(lastColon + 1));
    head = s.slice(0, lastColon + 1) + '0:0';
  }
  const [left, right] = head.includes('::') ? head.split('::') : [head, null];
  const l = left ? left.split(':') : [];
  const r = right === null ? [] : right ? right.split(':') : [];
  const missing = 8 - l.length - r.length;
  const groups = right === null ? l : [...l, ...Array<string>(missing).fill('0'), ...r];
  let v = groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
  if (tailV4 !== null) v = (v & ~0xffffffffn) | tailV4;
  return v;
}

/** Parses an IPv4 or IPv6 address (no zone, no brackets); null when malformed. IPv4-mapped IPv6 becomes IPv4. */
export function parseIp(s: string): IpValue | null {
  const kind = isIP(s);
  if (kind === 4) return { version: 4, value: parseV4(s) };
  if (kind === 6) {
    if (s.includes('%')) return null;
    const value = parseV6(s);
    if (value >> 32n === 0xffffn) return { version: 4, value: value & 0xffffffffn };
    return { version: 6, value };
  }
  return null;
}

export function formatIp(version: IpVersion, value: bigint): string {
  if (version === 4) {
    return [24n, 16n, 8n, 0n].map((sh) => String((value >> sh) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952 §4.2: compress the longest run (≥ 2) of zero groups, the first on a tie.
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

/** The canonical text of an address, or null when malformed. */
export function normalizeIp(s: string): string | null {
  const ip = parseIp(s);
  return ip ? formatIp(ip.version, ip.value) : null;
}

/** Parses "ADDR/PREFIX" strictly: host bits must be zero. Throws RangeError with a message that names the problem. */
export function parseCidr(s: string): Cidr {
  const slash = s.indexOf('/');
  if (slash < 0) throw new RangeError(`${JSON.stringify(s)} is not a CIDR (ADDRESS/PREFIX)`);
  const addrText = s.slice(0, slash);
  const ip = isIP(addrText) ? parseIp(addrText) : null;
  const prefixText = s.slice(slash + 1);
  if (!ip || isIP(addrText) !== ip.version || !/^\d{1,3}$/.test(prefixText)) {
    throw new RangeError(`${JSON.stringify(s)} is not a CIDR (ADDRESS/PREFIX)`);
  }
  const prefix = Number(prefixText);
  const bits = BITS[ip.version];
  if (prefix > bits) throw new RangeError(`prefix of ${s} is longer than ${bits}`);
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((ip.value & hostMask) !== 0n) throw new RangeError(`${s} has host bits set (did you mean ${formatCidr({ ...ip, base: ip.value & ~hostMask, prefix })}?)`);
  return { version: ip.version, base: ip.value, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.version, c.base)}/${c.prefix}`;
}

/** Number of addresses in the pool (2^(bits - prefix)). */
export function cidrSize(c: Cidr): bigint {
  return 1n << BigInt(BITS[c.version] - c.prefix);
}

/** The address `offset` places after the pool's network address. */
export function addressAt(c: Cidr, offset: number | bigint): string {
  const off = BigInt(offset);
  if (off < 0n || off >= cidrSize(c)) throw new RangeError(`offset ${off} is outside ${formatCidr(c)}`);
  return formatIp(c.version, c.base + off);
}

/** Host route of an address: a.b.c.d/32 or x::y/128. */
export function hostRoute(address: string): string {
  return `${address}/${address.includes(':') ? 128 : 32}`;
}

/** Does the pool contain this address? */
export function cidrContains(c: Cidr, address: string): boolean {
  const ip = parseIp(address);
  if (!ip || ip.version !== c.version) return false;
  return ip.value >= c.base && ip.value < c.base + cidrSize(c);
}
