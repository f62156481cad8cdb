/**
 * ICMP (RFC 792) and ICMPv6 (RFC 4443) as a host answers them: echo replies,
 * and destination-unreachable/port-unreachable for UDP datagrams to a closed
 * port (RFC 1122 §3.2.2.1, RFC 4443 §3.1 code 4). Errors are rate limited
 * (RFC 4443 §2.4(f); RFC 1812 §4.3.2.8) and never sent about an ICMP error,
 * to a multicast/broadcast destination or from an unspecified source
 * (RFC 1122 §3.2.2, RFC 4443 §2.4(e)).
 */
import { finish, pseudoHeaderSum, sumBytes } from './checksum.js';
import { type IpView, PROTO_ICMP, PROTO_ICMPV6, ipHeaderLen, isMulticastOrBroadcast, writeIpHeader } from './ip.js';
import type { Output } from './output.js';

export const ICMP_ECHO_REPLY = 0;
const ICMP_UNREACHABLE = 3;
const ICMP_PORT_UNREACHABLE = 3;
export const ICMP_ECHO_REQUEST = 8;
const ICMP6_UNREACHABLE = 1;
const ICMP6_PORT_UNREACHABLE = 4;
export const ICMP6_ECHO_REQUEST = 128;
export const ICMP6_ECHO_REPLY = 129;
/** RFC 1812 §4.3.2.3: an ICMPv4 error is at most 576 bytes in all. */
const ICMP4_ERROR_MAX = 576;
/** RFC 4443 §2.4(c): an ICMPv6 error must not exceed the minimum IPv6 MTU. */
const ICMP6_ERROR_MAX = 1280;

export type IcmpResult = 'answered' | 'ignored' | 'malformed';

/** Checks the ICMP/ICMPv6 checksum of the message in `v`. */
function checksumOk(buf: Uint8Array, v: IpView): boolean {
  const len = v.payloadEnd - v.payloadStart;
  const init = v.version === 6 ? pseudoHeaderSum(buf, v.srcAt, v.dstAt, 16, PROTO_ICMPV6, len) : 0;
  return finish(sumBytes(buf, v.payloadStart, v.payloadEnd, init)) === 0;
}

/** What an ICMP message to a forwarded destination is: only echo requests are relayed. */
export function echoRequestAt(buf: Uint8Array, v: IpView): 'echo-request' | 'other' | 'malformed' {
  if (v.payloadEnd - v.payloadStart < 8 || !checksumOk(buf, v)) return 'malformed';
  const type = buf[v.payloadStart]!;
  return type === (v.version === 4 ? ICMP_ECHO_REQUEST : ICMP6_ECHO_REQUEST) && buf[v.payloadStart + 1] === 0 ? 'echo-request' : 'other';
}

/** Answers an echo request with an echo reply carrying the same identifier, sequence and data. */
export function handleIcmp(buf: Uint8Array, v: IpView, out: Output, mtu: number): IcmpResult {
  const len = v.payloadEnd - v.payloadStart;
  if (len < 8 || !checksumOk(buf, v)) return 'malformed';
  const type = buf[v.payloadStart]!;
  const request = v.version === 4 ? ICMP_ECHO_REQUEST : ICMP6_ECHO_REQUEST;
  if (type !== request || buf[v.payloadStart + 1] !== 0) return 'ignored';
  if (isMulticastOrBroadcast(buf, v.dstAt, v.addrLen)) return 'ignored';
  if (ipHeaderLen(v.addrLen) + len > mtu) return 'ignored';
  const at = startReply(buf, v, out, len);
  const o = out.data();
  const m = at + ipHeaderLen(v.addrLen);
  o.set(buf.subarray(v.payloadStart, v.payloadEnd), m);
  o[m] = v.version === 4 ? ICMP_ECHO_REPLY : ICMP6_ECHO_REPLY;
  o[m + 2] = 0;
  o[m + 3] = 0;
  writeChecksum(o, at, m, len, v.version, v.addrLen);
  out.commit(ipHeaderLen(v.addrLen) + len);
  return 'answered';
}

/**
 * Why a destination is unreachable, as ICMP (RFC 792; RFC 1812 §5.2.7.1 for
 * code 13) and ICMPv6 (RFC 4443 §3.1) code it.
 */
export type Unreachable = 'port' | 'host' | 'admin-prohibited';

const UNREACHABLE_CODES: Record<Unreachable, readonly [v4: number, v6: number]> = {
  port: [ICMP_PORT_UNREACHABLE, ICMP6_PORT_UNREACHABLE],
  host: [1, 3], // host unreachable / address unreachable
  'admin-prohibited': [13, 1], // communication administratively prohibited
};

/** Sends port unreachable about the datagram in `v` (already known not to be an ICMP error itself). */
export function sendPortUnreachable(buf: Uint8Array, v: IpView, out: Output): boolean {
  return sendUnreachable(buf, v, out, 'port');
}

/** Sends destination unreachable (`why`) about the packet in `v`, quoting as much of it as the error may carry. */
export function sendUnreachable(buf: Uint8Array, v: IpView, out: Output, why: Unreachable): boolean {
  if (isMulticastOrBroadcast(buf, v.dstAt, v.addrLen)) return false;
  const ipLen = ipHeaderLen(v.addrLen);
  const max = v.version === 4 ? ICMP4_ERROR_MAX : ICMP6_ERROR_MAX;
  const quoted = Math.min(v.payloadEnd - v.start, max - ipLen - 8);
  const len = 8 + quoted;
  const at = startReply(buf, v, out, len);
  const o = out.data();
  const m = at + ipLen;
  o[m] = v.version === 4 ? ICMP_UNREACHABLE : ICMP6_UNREACHABLE;
  o[m + 1] = UNREACHABLE_CODES[why][v.version === 4 ? 0 : 1];
  o.fill(0, m + 2, m + 8); // checksum, then "unused" (RFC 792 / RFC 4443 §3.1)
  o.set(buf.subarray(v.start, v.start + quoted), m + 8);
  writeChecksum(o, at, m, len, v.version, v.addrLen);
  out.commit(ipLen + len);
  return true;
}

/**
 * Writes an echo reply from `local` to `remote` with this identifier,
 * sequence number and data (an echo relayed for a forwarded destination:
 * the answer of the real host, sent as if from it).
 */
export function writeEchoReply(out: Output, local: Uint8Array, remote: Uint8Array, id: number, seq: number, data: Uint8Array): void {
  const version = local.length === 4 ? 4 : 6;
  const ipLen = ipHeaderLen(local.length);
  const len = 8 + data.length;
  const at = out.reserve(ipLen + len);
  const o = out.data();
  writeIpHeader(o, at, local, remote, version === 4 ? PROTO_ICMP : PROTO_ICMPV6, len);
  const m = at + ipLen;
  o[m] = version === 4 ? ICMP_ECHO_REPLY : ICMP6_ECHO_REPLY;
  o[m + 1] = 0;
  o[m + 2] = 0;
  o[m + 3] = 0;
  o[m + 4] = id >>> 8;
  o[m + 5] = id & 0xff;
  o[m + 6] = seq >>> 8;
  o[m + 7] = seq & 0xff;
  o.set(data, m + 8);
  writeChecksum(o, at, m, len, version, local.length);
  out.commit(ipLen + len);
}

/** Reserves an ICMP message of `len` bytes back to the sender of the packet in `v` and writes its IP header; returns where the IP header starts. */
function startReply(buf: Uint8Array, v: IpView, out: Output, len: number): number {
  const at = out.reserve(ipHeaderLen(v.addrLen) + len);
  const src = buf.subarray(v.dstAt, v.dstAt + v.addrLen);
  const dst = buf.subarray(v.srcAt, v.srcAt + v.addrLen);
  writeIpHeader(out.data(), at, src, dst, v.version === 4 ? PROTO_ICMP : PROTO_ICMPV6, len);
  return at;
}

function writeChecksum(o: Uint8Array, at: number, m: number, len: number, version: 4 | 6, addrLen: number): void {
  const init = version === 6 ? pseudoHeaderSum(o, at + 8, at + 24, addrLen, PROTO_ICMPV6, len) : 0;
  const c = finish(sumBytes(o, m, m + len, init));
  o[m + 2] = c >>> 8;
  o[m + 3] = c & 0xff;
}

/** A token bucket for ICMP errors (Linux: icmp_msgs_per_sec 1000, burst 50). */
export class IcmpRateLimiter {
  private tokens: number;
  private last = -Infinity;

  constructor(private readonly perSecond = 1000, private readonly burst = 50) {
    this.tokens = burst;
  }

  take(now: number): boolean {
    if (this.last !== -Infinity) this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
