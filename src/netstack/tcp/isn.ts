/**
 * Initial sequence numbers per RFC 6528 §3:
 *
 *   ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
 *
 * M is a timer ticking every 4 microseconds (RFC 9293 §3.4.1); F is a keyed
 * hash of the connection's identity (keyed BLAKE2s here, the MAC WireGuard
 * already uses) under a secret chosen once per stack, so sequence numbers of
 * different connections are unrelated and an off-path attacker cannot guess
 * them, while a quickly reused 4-tuple still gets increasing ones.
 *
 * Computed for every connection (the netstack exit's SYN-ACKs), so it runs on
 * the addon's keyed BLAKE2s when it loads (about 1 µs, no allocation) rather
 * than noble's (about 12 µs); both give the same bytes (test/property checks
 * every BLAKE2s backend against noble).
 */
import { MAC_LEN, nobleBlake2s, type Blake2s } from '../../crypto/blake2s.js';
import { nativeBlake2s } from '../../crypto/blake2s-native.js';

export class IsnGenerator {
  /** The connection identity (IPv4: 4 + 4 + 2 + 2 bytes, IPv6: 16 + 16 + 2 + 2) and F's output (a 16-byte MAC, F its first four), reused. */
  private readonly in4 = new Uint8Array(12);
  private readonly in6 = new Uint8Array(36);
  private readonly out = new Uint8Array(MAC_LEN);

  constructor(
    private readonly secret: Uint8Array,
    private readonly blake2s: Blake2s = nativeBlake2s ?? nobleBlake2s,
  ) {
    if (secret.length !== 32) throw new RangeError('ISN secret must be 32 bytes');
  }

  /** `nowMs` is the stack's monotonic clock in milliseconds. */
  next(local: Uint8Array, localPort: number, remote: Uint8Array, remotePort: number, nowMs: number): number {
    const input = local.length === 4 ? this.in4 : this.in6;
    input.set(local, 0);
    input.set(remote, local.length);
    const p = local.length + remote.length;
    input[p] = localPort >>> 8;
    input[p + 1] = localPort & 0xff;
    input[p + 2] = remotePort >>> 8;
    input[p + 3] = remotePort & 0xff;
    const f = this.out;
    this.blake2s.macInto(f, this.secret, input);
    const F = ((f[0]! << 24) | (f[1]! << 16) | (f[2]! << 8) | f[3]!) >>> 0;
    const M = Math.floor(nowMs * 250) >>> 0; // 4 µs ticks
    return (M + F) >>> 0;
  }
}
