/**
 * TAI64N timestamps (cr.yp.to/libtai/tai64.html), the initiation's payload
 * (whitepaper §5.4.2). 12 bytes big-endian: seconds + 2^62 (+10 for the TAI
 * offset, as wireguard-go writes them), then nanoseconds.
 *
 * wireguard-go rounds the nanoseconds down to a multiple of 2^24 ns (~16 ms)
 * so that the timestamp does not leak a precise clock (whitepaper §5.1 notes
 * the timestamp only has to increase); we do the same.
 */
export const TAI64N_LEN = 12;
const TAI64_BASE = 0x4000000000000000n + 10n;
const WHITENER_MASK = 0x1000000 - 1;

/** Encodes wall-clock milliseconds (plus optional extra nanoseconds) as TAI64N. */
export function tai64n(wallMs: number, extraNs = 0): Uint8Array {
  const out = new Uint8Array(TAI64N_LEN);
  const secs = Math.floor(wallMs / 1000);
  let nanos = Math.floor((wallMs - secs * 1000) * 1e6) + extraNs;
  nanos -= nanos & WHITENER_MASK;
  const s = BigInt(secs) + TAI64_BASE;
  const v = new DataView(out.buffer);
  v.setBigUint64(0, s, false);
  v.setUint32(8, nanos >>> 0, false);
  return out;
}

/** True when a is strictly after b (byte-wise big-endian comparison). */
export function tai64nAfter(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < TAI64N_LEN; i++) {
    if (a[i] !== b[i]) return a[i]! > b[i]!;
  }
  return false;
}
