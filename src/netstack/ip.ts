/**
 * IPv4 (RFC 791) and IPv6 (RFC 8200) headers as the stack's host sees them:
 * parsed into a reused view (no objects per packet) and written in front of
 * an upper-layer segment. The stack is an end host, not a router: it accepts
 * packets addressed to one of its own addresses, does not reassemble
 * fragments (tunnel MTUs make them rare; they are dropped and counted) and
 * skips no IPv6 extension headers other than none at all.
 */
import { finish, sumBytes } from './checksum.js';
import type { DropReason } from './counters.js';

export const PROTO_ICMP = 1;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_ICMPV6 = 58;

export const IPV4_HEADER_LEN = 20;
export const IPV6_HEADER_LEN = 40;
/** Hop limit / TTL of packets the stack originates (Linux's default of 64). */
export const DEFAULT_TTL = 64;

/** Where the parts of the packet being processed are; filled by parseIp, reused for every packet. */
export class IpView {
  version: 4 | 6 = 4;
  /** Absolute offset of the IP header in the buffer. */
  start = 0;
  /** Absolute offsets of the upper-layer payload. */
  payloadStart = 0;
  payloadEnd = 0;
  proto = 0;
  srcAt = 0;
  dstAt = 0;
  /** 4 or 16. */
  addrLen = 4;
}

/**
 * Parses the IP header at buf[at, at+len) into `v`. Returns null when the
 * packet is acceptable, or the reason to drop it. Never throws.
 */
export function parseIp(buf: Uint8Array, at: number, len: number, v: IpView): DropReason | null {
  if (len < 1) return 'malformed-ip';
  const version = buf[at]! >>> 4;
  if (version === 4) {
    if (len < IPV4_HEADER_LEN) return 'malformed-ip';
    const ihl = (buf[at]! & 0x0f) * 4;
    const total = (buf[at + 2]! << 8) | buf[at + 3]!;
    if (ihl < IPV4_HEADER_LEN || total < ihl || total > len) return 'malformed-ip';
    // RFC 1122 §3.2.1.2: a host verifies the header checksum and silently discards a bad one.
    if (finish(sumBytes(buf, at, at + ihl, 0)) !== 0) return 'bad-checksum';
    // More-fragments flag or a fragment offset: a fragment (RFC 791 §3.1).
    if ((buf[at + 6]! & 0x20) !== 0 || (((buf[at + 6]! & 0x1f) << 8) | buf[at + 7]!) !== 0) return 'fragment';
    v.version = 4;
    v.start = at;
    v.payloadStart = at + ihl;
    v.payloadEnd = at + total;
    v.proto = buf[at + 9]!;
    v.srcAt = at + 12;
    v.dstAt = at + 16;
    v.addrLen = 4;
    return null;
  }
  if (version === 6) {
    if (len < IPV6_HEADER_LEN) return 'malformed-ip';
    const payload = (buf[at + 4]! << 8) | buf[at + 5]!;
    if (IPV6_HEADER_LEN + payload > len) return 'malformed-ip';
    v.version = 6;
    v.start = at;
    v.payloadStart = at + IPV6_HEADER_LEN;
    v.payloadEnd = at + IPV6_HEADER_LEN + payload;
    v.proto = buf[at + 6]!;
    v.srcAt = at + 8;
    v.dstAt = at + 24;
    v.addrLen = 16;
    return null;
  }
  return 'malformed-ip';
}

/** Length of the IP header the stack writes for this address length. */
export function ipHeaderLen(addrLen: number): number {
  return addrLen === 4 ? IPV4_HEADER_LEN : IPV6_HEADER_LEN;
}

/**
 * Writes an IP header at buf[at] for an upper-layer payload of `payloadLen`
 * bytes from `src` to `dst` (both 4 or both 16 bytes). Returns the header length.
 * IPv4: DF set (RFC 1191 path MTU discovery; the tunnel never fragments), id 0
 * as RFC 6864 §4.1 allows for atomic datagrams.
 */
export function writeIpHeader(buf: Uint8Array, at: number, src: Uint8Array, dst: Uint8Array, proto: number, payloadLen: number): number {
  if (src.length === 4) {
    const total = IPV4_HEADER_LEN + payloadLen;
    buf[at] = 0x45;
    buf[at + 1] = 0;
    buf[at + 2] = total >>> 8;
    buf[at + 3] = total & 0xff;
    buf[at + 4] = 0;
    buf[at + 5] = 0;
    buf[at + 6] = 0x40;
    buf[at + 7] = 0;
    buf[at + 8] = DEFAULT_TTL;
    buf[at + 9] = proto;
    buf[at + 10] = 0;
    buf[at + 11] = 0;
    buf.set(src, at + 12);
    buf.set(dst, at + 16);
    const c = finish(sumBytes(buf, at, at + IPV4_HEADER_LEN, 0));
    buf[at + 10] = c >>> 8;
    buf[at + 11] = c & 0xff;
    return IPV4_HEADER_LEN;
  }
  buf[at] = 0x60;
  buf[at + 1] = 0;
  buf[at + 2] = 0;
  buf[at + 3] = 0;
  buf[at + 4] = payloadLen >>> 8;
  buf[at + 5] = payloadLen & 0xff;
  buf[at + 6] = proto;
  buf[at + 7] = DEFAULT_TTL;
  buf.set(src, at + 8);
  buf.set(dst, at + 24);
  return IPV6_HEADER_LEN;
}

/** Whether buf[at, at+addr.length) equals `addr`. */
export function addrEquals(buf: Uint8Array, at: number, addr: Uint8Array): boolean {
  for (let i = 0; i < addr.length; i++) if (buf[at + i] !== addr[i]) return false;
  return true;
}

/** True for IPv4 multicast/broadcast and IPv6 multicast destinations (RFC 1122 §3.2.2: never answered with errors). */
export function isMulticastOrBroadcast(buf: Uint8Array, at: number, addrLen: number): boolean {
  if (addrLen === 4) return buf[at]! >= 224 || (buf[at] === 255 && buf[at + 3] === 255);
  return buf[at] === 0xff;
}
