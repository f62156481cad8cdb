/**
 * IP addresses and CIDR pools as numbers, for address allocation and IP
 * attribution. Addresses are parsed and printed by io/ip-address.ts (the
 * program's one address text, RFC 5952 for IPv6) and held here as bigints;
 * output is canonical, so the same address always compares equal as a
 * string in SQLite.
 */
import { isIP } from 'node:net';
import { formatIPv4, formatIPv6, isV4Mapped, parseIPv4, parseIPv6 } from '../io/ip-address.js';

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

function toBigInt(bytes: Uint8Array): bigint {
  let v = 0n;
  for (const b of bytes) v = (v << 8n) | BigInt(b);
  return v;
}

function toBytes(value: bigint, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = len - 1, v = value; i >= 0; i--, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

/** Parses an IPv4 or IPv6 address (no zone, no brackets); null when malformed. IPv4-mapped IPv6 becomes IPv4. */
export function parseIp(s: string): IpValue | null {
  const v4 = parseIPv4(s);
  if (v4) return { version: 4, value: toBigInt(v4) };
  if (s.includes('%')) return null;
  const v6 = parseIPv6(s);
  if (!v6) return null;
  if (isV4Mapped(v6)) return { version: 4, value: toBigInt(v6.subarray(12)) };
  return { version: 6, value: toBigInt(v6) };
}

/** Canonical text: a dotted quad, or RFC 5952 for IPv6 (io/ip-address.ts, the one formatter). */
export function formatIp(version: IpVersion, value: bigint): string {
  return version === 4 ? formatIPv4(toBytes(value, 4)) : formatIPv6(toBytes(value, 16));
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
