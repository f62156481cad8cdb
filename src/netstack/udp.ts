/**
 * UDP (RFC 768) for the stack's sockets: the header checked (length and, when
 * present, the checksum — mandatory over IPv6, RFC 8200 §8.1) and written with
 * a checksum always (RFC 1122 §4.1.3.4 recommends it over IPv4 too).
 */
import { finish, pseudoHeaderSum, sumBytes } from './checksum.js';
import { type IpView, ipHeaderLen, PROTO_UDP, writeIpHeader } from './ip.js';
import type { Output } from './output.js';

export const UDP_HEADER_LEN = 8;

/** A parsed datagram's ports and payload (absolute offsets). Reused. */
export class UdpView {
  srcPort = 0;
  dstPort = 0;
  dataStart = 0;
  dataLen = 0;
}

export function parseUdp(buf: Uint8Array, v: IpView, u: UdpView): boolean {
  const avail = v.payloadEnd - v.payloadStart;
  if (avail < UDP_HEADER_LEN) return false;
  const p = v.payloadStart;
  const len = (buf[p + 4]! << 8) | buf[p + 5]!;
  if (len < UDP_HEADER_LEN || len > avail) return false;
  const sum = (buf[p + 6]! << 8) | buf[p + 7]!;
  if (sum === 0) {
    if (v.version === 6) return false;
  } else if (finish(sumBytes(buf, p, p + len, pseudoHeaderSum(buf, v.srcAt, v.dstAt, v.addrLen, PROTO_UDP, len))) !== 0) {
    return false;
  }
  u.srcPort = (buf[p]! << 8) | buf[p + 1]!;
  u.dstPort = (buf[p + 2]! << 8) | buf[p + 3]!;
  u.dataStart = p + UDP_HEADER_LEN;
  u.dataLen = len - UDP_HEADER_LEN;
  return true;
}

/** Writes one datagram from local:srcPort to remote:dstPort with `data` as payload into `out`. */
export function writeUdp(out: Output, local: Uint8Array, srcPort: number, remote: Uint8Array, dstPort: number, data: Uint8Array): void {
  const ipLen = ipHeaderLen(local.length);
  const len = UDP_HEADER_LEN + data.length;
  const at = out.reserve(ipLen + len);
  const o = out.data();
  writeIpHeader(o, at, local, remote, PROTO_UDP, len);
  const u = at + ipLen;
  o[u] = srcPort >>> 8;
  o[u + 1] = srcPort & 0xff;
  o[u + 2] = dstPort >>> 8;
  o[u + 3] = dstPort & 0xff;
  o[u + 4] = len >>> 8;
  o[u + 5] = len & 0xff;
  o[u + 6] = 0;
  o[u + 7] = 0;
  o.set(data, u + UDP_HEADER_LEN);
  const srcAt = local.length === 4 ? at + 12 : at + 8;
  const dstAt = local.length === 4 ? at + 16 : at + 24;
  let c = finish(sumBytes(o, u, u + len, pseudoHeaderSum(o, srcAt, dstAt, local.length, PROTO_UDP, len)));
  if (c === 0) c = 0xffff; // RFC 768: a computed zero is sent as all ones
  o[u + 6] = c >>> 8;
  o[u + 7] = c & 0xff;
  out.commit(ipLen + len);
}
