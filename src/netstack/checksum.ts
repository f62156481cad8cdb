/**
 * The Internet checksum (RFC 1071): the ones' complement of the ones'
 * complement sum of 16-bit words. Sums are carried in a plain number (53 bits
 * hold any packet's sum without overflow) and folded once at the end, so the
 * hot path neither allocates nor branches per word.
 */

/** Adds the bytes buf[start, end) as big-endian 16-bit words to `acc` (an odd tail is padded with zero, RFC 1071 §4.1). */
export function sumBytes(buf: Uint8Array, start: number, end: number, acc: number): number {
  let i = start;
  const even = end - ((end - start) & 1);
  for (; i < even; i += 2) acc += (buf[i]! << 8) | buf[i + 1]!;
  if (i < end) acc += buf[i]! << 8;
  return acc;
}

/** Folds a running sum to 16 bits and complements it: the value to write into a checksum field. */
export function finish(acc: number): number {
  while (acc > 0xffff) acc = (acc & 0xffff) + Math.floor(acc / 65536);
  return ~acc & 0xffff;
}

/**
 * The pseudo-header sum for TCP/UDP/ICMPv6: source and destination address
 * (RFC 793 §3.1 for IPv4, RFC 8200 §8.1 for IPv6), protocol and upper-layer
 * length. The addresses are read where they sit in the IP header.
 */
export function pseudoHeaderSum(buf: Uint8Array, srcAt: number, dstAt: number, addrLen: number, proto: number, length: number): number {
  let acc = sumBytes(buf, srcAt, srcAt + addrLen, 0);
  acc = sumBytes(buf, dstAt, dstAt + addrLen, acc);
  return acc + proto + (length >>> 16) + (length & 0xffff);
}
