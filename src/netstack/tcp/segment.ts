/**
 * The TCP header (RFC 9293 §3.1) and the options this stack speaks: MSS
 * (RFC 9293 §3.7.1), window scale (RFC 7323 §2), SACK-permitted and SACK
 * blocks (RFC 2018 §2-3). Parsing fills a reused view; writing puts a header
 * with options in front of payload bytes already in place. Timestamps
 * (RFC 7323 §3) are not sent; a peer's are skipped.
 */
import { finish, pseudoHeaderSum, sumBytes } from '../checksum.js';

export const TCP_HEADER_LEN = 20;
export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;

const OPT_END = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;
const OPT_WSCALE = 3;
const OPT_SACK_PERMITTED = 4;
const OPT_SACK = 5;
/** RFC 7323 §2.3: a shift above 14 is treated as 14. */
export const MAX_WSCALE = 14;
/** Blocks that fit 40 bytes of options without timestamps (RFC 2018 §3). */
export const MAX_SACK_BLOCKS = 4;

export class TcpView {
  srcPort = 0;
  dstPort = 0;
  seq = 0;
  ack = 0;
  flags = 0;
  /** The raw 16-bit window field (unscaled). */
  window = 0;
  /** Absolute offsets of the payload. */
  dataStart = 0;
  dataLen = 0;
  /** Options (-1 / false when absent). */
  mss = -1;
  wscale = -1;
  sackPermitted = false;
  sackCount = 0;
  /** Left and right edges of the SACK blocks, 2 per block. */
  readonly sack = new Uint32Array(2 * MAX_SACK_BLOCKS);
}

/**
 * Parses the TCP segment at buf[start, end) (the IP payload) into `v`,
 * checking the checksum against the pseudo-header. Returns false for a
 * malformed segment (the caller drops and counts it).
 */
export function parseTcp(buf: Uint8Array, start: number, end: number, srcAt: number, dstAt: number, addrLen: number, v: TcpView): boolean {
  const len = end - start;
  if (len < TCP_HEADER_LEN) return false;
  const off = (buf[start + 12]! >>> 4) * 4;
  if (off < TCP_HEADER_LEN || off > len) return false;
  const acc = sumBytes(buf, start, end, pseudoHeaderSum(buf, srcAt, dstAt, addrLen, 6, len));
  if (finish(acc) !== 0) return false;
  v.srcPort = (buf[start]! << 8) | buf[start + 1]!;
  v.dstPort = (buf[start + 2]! << 8) | buf[start + 3]!;
  v.seq = ((buf[start + 4]! << 24) | (buf[start + 5]! << 16) | (buf[start + 6]! << 8) | buf[start + 7]!) >>> 0;
  v.ack = ((buf[start + 8]! << 24) | (buf[start + 9]! << 16) | (buf[start + 10]! << 8) | buf[start + 11]!) >>> 0;
  v.flags = buf[start + 13]! & 0x3f;
  v.window = (buf[start + 14]! << 8) | buf[start + 15]!;
  v.dataStart = start + off;
  v.dataLen = len - off;
  v.mss = -1;
  v.wscale = -1;
  v.sackPermitted = false;
  v.sackCount = 0;
  let i = start + TCP_HEADER_LEN;
  const optEnd = start + off;
  while (i < optEnd) {
    const kind = buf[i]!;
    if (kind === OPT_END) break;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= optEnd) return false;
    const olen = buf[i + 1]!;
    if (olen < 2 || i + olen > optEnd) return false;
    if (kind === OPT_MSS && olen === 4) v.mss = (buf[i + 2]! << 8) | buf[i + 3]!;
    else if (kind === OPT_WSCALE && olen === 3) v.wscale = Math.min(buf[i + 2]!, MAX_WSCALE);
    else if (kind === OPT_SACK_PERMITTED && olen === 2) v.sackPermitted = true;
    else if (kind === OPT_SACK && (olen - 2) % 8 === 0) {
      const n = Math.min((olen - 2) / 8, MAX_SACK_BLOCKS);
      for (let b = 0; b < n; b++) {
        const p = i + 2 + 8 * b;
        v.sack[2 * b] = ((buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!) >>> 0;
        v.sack[2 * b + 1] = ((buf[p + 4]! << 24) | (buf[p + 5]! << 16) | (buf[p + 6]! << 8) | buf[p + 7]!) >>> 0;
      }
      v.sackCount = n;
    }
    i += olen;
  }
  return true;
}

function put32(buf: Uint8Array, at: number, x: number): void {
  buf[at] = x >>> 24;
  buf[at + 1] = (x >>> 16) & 0xff;
  buf[at + 2] = (x >>> 8) & 0xff;
  buf[at + 3] = x & 0xff;
}

/** Options of a SYN or SYN-ACK: MSS, SACK-permitted and window scale (each only if >= 0 / true). Returns bytes written (a multiple of 4). */
export function writeSynOptions(buf: Uint8Array, at: number, mss: number, sackPermitted: boolean, wscale: number): number {
  let i = at;
  buf[i++] = OPT_MSS;
  buf[i++] = 4;
  buf[i++] = mss >>> 8;
  buf[i++] = mss & 0xff;
  if (sackPermitted) {
    buf[i++] = OPT_NOP;
    buf[i++] = OPT_NOP;
    buf[i++] = OPT_SACK_PERMITTED;
    buf[i++] = 2;
  }
  if (wscale >= 0) {
    buf[i++] = OPT_NOP;
    buf[i++] = OPT_WSCALE;
    buf[i++] = 3;
    buf[i++] = wscale;
  }
  return i - at;
}

/** A SACK option with `n` blocks from `edges` (left, right pairs). Returns bytes written (a multiple of 4). */
export function writeSackOption(buf: Uint8Array, at: number, edges: Uint32Array, n: number): number {
  if (n === 0) return 0;
  buf[at] = OPT_NOP;
  buf[at + 1] = OPT_NOP;
  buf[at + 2] = OPT_SACK;
  buf[at + 3] = 2 + 8 * n;
  for (let b = 0; b < n; b++) {
    put32(buf, at + 4 + 8 * b, edges[2 * b]!);
    put32(buf, at + 8 + 8 * b, edges[2 * b + 1]!);
  }
  return 4 + 8 * n;
}

/**
 * Writes the fixed TCP header at buf[at] (options, if any, already at
 * at+20 for optLen bytes; payload after them) and the checksum over the
 * pseudo-header whose addresses sit at srcAt/dstAt.
 */
export function writeTcpHeader(
  buf: Uint8Array,
  at: number,
  srcPort: number,
  dstPort: number,
  seq: number,
  ack: number,
  flags: number,
  window: number,
  optLen: number,
  payloadLen: number,
  srcAt: number,
  dstAt: number,
  addrLen: number,
): void {
  buf[at] = srcPort >>> 8;
  buf[at + 1] = srcPort & 0xff;
  buf[at + 2] = dstPort >>> 8;
  buf[at + 3] = dstPort & 0xff;
  put32(buf, at + 4, seq);
  put32(buf, at + 8, ack);
  buf[at + 12] = ((TCP_HEADER_LEN + optLen) / 4) << 4;
  buf[at + 13] = flags;
  buf[at + 14] = window >>> 8;
  buf[at + 15] = window & 0xff;
  buf[at + 16] = 0;
  buf[at + 17] = 0;
  buf[at + 18] = 0;
  buf[at + 19] = 0;
  const len = TCP_HEADER_LEN + optLen + payloadLen;
  const c = finish(sumBytes(buf, at, at + len, pseudoHeaderSum(buf, srcAt, dstAt, addrLen, 6, len)));
  buf[at + 16] = c >>> 8;
  buf[at + 17] = c & 0xff;
}
