/** Minimal IPv4/IPv6 UDP packets for tests (checksums left zero: the device does not read them). */
import { parseIPv4, parseIPv6 } from '../../src/io/endpoint.js';

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
