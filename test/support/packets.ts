/** Minimal IPv4/IPv6 UDP packets for tests (checksums left zero: the device does not read them). */
import { parseIPv4, parseIPv6 } from '../../src/io/ip-address.js';

export function ipv4Udp(src: string, dst: string, payload: Uint8Array, sport = 1000, dport = 2000): Uint8Array {
  const p = new Uint8Array(28 + payload.length);
  p[0] = 0x45;
  const total = p.length;
  p[2] = total >>> 8;
  p[3] = total & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(parseIPv4(src)!, 12);
  p.set(parseIPv4(dst)!, 16);
  const udpLen = 8 + payload.length;
  p[20] = sport >>> 8;
  p[21] = sport & 0xff;
  p[22] = dport >>> 8;
  p[23] = dport & 0xff;
  p[24] = udpLen >>> 8;
  p[25] = udpLen & 0xff;
  p.set(payload, 28);
  return p;
}

export function ipv6Udp(src: string, dst: string, payload: Uint8Array, sport = 1000, dport = 2000): Uint8Array {
  const p = new Uint8Array(48 + payload.length);
  p[0] = 0x60;
  const plen = 8 + payload.length;
  p[4] = plen >>> 8;
  p[5] = plen & 0xff;
  p[6] = 17;
  p[7] = 64;
  p.set(parseIPv6(src)!, 8);
  p.set(parseIPv6(dst)!, 24);
  p[40] = sport >>> 8;
  p[41] = sport & 0xff;
  p[42] = dport >>> 8;
  p[43] = dport & 0xff;
  p[44] = plen >>> 8;
  p[45] = plen & 0xff;
  p.set(payload, 48);
  return p;
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/** An ICMPv4 echo request (IPv4 header + ICMP), checksums filled in. */
export function icmpEchoRequest(src: string, dst: string, id: number, seq: number, payloadLen = 32): Uint8Array {
  const p = new Uint8Array(20 + 8 + payloadLen);
  const v = new DataView(p.buffer);
  p[0] = 0x45;
  v.setUint16(2, p.length);
  v.setUint16(4, seq); // identification
  p[8] = 64; // TTL
  p[9] = 1; // ICMP
  p.set(src.split('.').map(Number), 12);
  p.set(dst.split('.').map(Number), 16);
  v.setUint16(10, checksum(p.subarray(0, 20)));
  p[20] = 8; // echo request
  v.setUint16(24, id);
  v.setUint16(26, seq);
  for (let i = 0; i < payloadLen; i++) p[28 + i] = (seq + i) & 0xff;
  v.setUint16(22, checksum(p.subarray(20)));
  return p;
}

/** An ICMPv6 echo request (IPv6 header + ICMPv6, RFC 4443 §4.1), its checksum over the pseudo-header (RFC 8200 §8.1) filled in. */
export function icmp6EchoRequest(src: string, dst: string, id: number, seq: number, payloadLen = 32): Uint8Array {
  const p = new Uint8Array(40 + 8 + payloadLen);
  const v = new DataView(p.buffer);
  const plen = 8 + payloadLen;
  p[0] = 0x60;
  v.setUint16(4, plen);
  p[6] = 58; // ICMPv6
  p[7] = 64; // hop limit
  p.set(parseIPv6(src)!, 8);
  p.set(parseIPv6(dst)!, 24);
  p[40] = 128; // echo request
  v.setUint16(44, id);
  v.setUint16(46, seq);
  for (let i = 0; i < payloadLen; i++) p[48 + i] = (seq + i) & 0xff;
  const pseudo = new Uint8Array(40 + plen);
  pseudo.set(p.subarray(8, 40), 0);
  new DataView(pseudo.buffer).setUint32(32, plen);
  pseudo[39] = 58;
  pseudo.set(p.subarray(40), 40);
  v.setUint16(42, checksum(pseudo));
  return p;
}

/** The ICMP echo reply fields of an IPv4 packet, or null if it is not one. */
export function parseEchoReply(p: Uint8Array): { src: string; dst: string; id: number; seq: number; payload: Uint8Array } | null {
  if (p.length < 28 || p[0]! >> 4 !== 4 || p[9] !== 1) return null;
  const ihl = (p[0]! & 0xf) * 4;
  if (p[ihl] !== 0) return null;
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return {
    src: p.subarray(12, 16).join('.'),
    dst: p.subarray(16, 20).join('.'),
    id: v.getUint16(ihl + 4),
    seq: v.getUint16(ihl + 6),
    payload: p.subarray(ihl + 8),
  };
}

function checksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (b.length & 1) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}
