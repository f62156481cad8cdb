/**
 * The little of IPv4/IPv6 headers the data path reads: version, total
 * length, source and destination offsets (RFC 791 §3.1, RFC 8200 §3).
 */
export const IPV4_HEADER_MIN = 20;
export const IPV6_HEADER_LEN = 40;
export const IPV4_SRC = 12;
export const IPV4_DST = 16;
export const IPV6_SRC = 8;
export const IPV6_DST = 24;

/** IP version (4 or 6) of the packet at buf[at], or 0 if it is not a plausible IP packet of `len` bytes. */
export function ipVersion(buf: Uint8Array, at: number, len: number): 0 | 4 | 6 {
  if (len < 1) return 0;
  const v = buf[at]! >>> 4;
  if (v === 4 && len >= IPV4_HEADER_MIN) return 4;
  if (v === 6 && len >= IPV6_HEADER_LEN) return 6;
  return 0;
}

/**
 * The packet's own length from its header (IPv4 total length; IPv6 payload
 * length + 40), or -1 when the header claims more than `len` bytes or is
 * malformed. Trailing bytes (WireGuard padding) are beyond this length.
 */
export function ipPacketLength(buf: Uint8Array, at: number, len: number): number {
  const v = ipVersion(buf, at, len);
  if (v === 4) {
    const ihl = (buf[at]! & 0x0f) * 4;
    const total = (buf[at + 2]! << 8) | buf[at + 3]!;
    return ihl >= IPV4_HEADER_MIN && total >= ihl && total <= len ? total : -1;
  }
  if (v === 6) {
    const total = ((buf[at + 4]! << 8) | buf[at + 5]!) + IPV6_HEADER_LEN;
    return total <= len ? total : -1;
  }
  return -1;
}
