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
 */
import { mac } from '../../crypto/blake2s.js';

export class IsnGenerator {
  constructor(private readonly secret: Uint8Array) {
    if (secret.length !== 32) throw new RangeError('ISN secret must be 32 bytes');
  }

  /** `nowMs` is the stack's monotonic clock in milliseconds. */
  next(local: Uint8Array, localPort: number, remote: Uint8Array, remotePort: number, nowMs: number): number {
    const input = new Uint8Array(local.length + remote.length + 4);
    input.set(local, 0);
    input.set(remote, local.length);
    const p = local.length + remote.length;
    input[p] = localPort >>> 8;
    input[p + 1] = localPort & 0xff;
    input[p + 2] = remotePort >>> 8;
    input[p + 3] = remotePort & 0xff;
    const f = mac(this.secret, input);
    const F = ((f[0]! << 24) | (f[1]! << 16) | (f[2]! << 8) | f[3]!) >>> 0;
    const M = Math.floor(nowMs * 250) >>> 0; // 4 µs ticks
    return (M + F) >>> 0;
  }
}
