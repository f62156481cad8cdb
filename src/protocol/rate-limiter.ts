/**
 * Per-source handshake rate limiter, as the kernel's ratelimiter.c and
 * wireguard-go's ratelimiter: a token bucket per IPv4 address or per IPv6
 * /64, refilled at 20 packets/s with a burst of 5. Applied to handshake
 * messages only while the device is under load (whitepaper §5.3).
 *
 * Time is passed in (milliseconds); `gc(now)` drops idle entries and is
 * called from the device's tick.
 *
 * Other rates make other limiters: the device also admits handshake messages
 * to its bounded queue per source (handshake-queue.ts), with a far larger
 * allowance, so one flooding address cannot take the whole queue.
 */
import { HANDSHAKE_RATE_BURST, HANDSHAKE_RATE_PER_SECOND } from './constants.js';

const IDLE_AFTER = 1000;

/** RateLimiter.take: over the share; within it; within it and the bucket was full. */
export const REFUSED = 0;
export const ALLOWED = 1;
export const ALLOWED_FRESH = 2;

interface Bucket {
  tokens: number;
  last: number;
}

export class RateLimiter {
  private readonly buckets = new Map<number | string, Bucket>();
  private readonly packetCost: number; // ms of tokens per packet
  private readonly bucketMax: number;

  constructor(perSecond: number = HANDSHAKE_RATE_PER_SECOND, burst: number = HANDSHAKE_RATE_BURST) {
    if (!(perSecond > 0) || !(burst >= 1)) throw new RangeError(`rate limiter: need a positive rate and a burst of at least 1, got ${perSecond}/s, ${burst}`);
    this.packetCost = 1000 / perSecond;
    this.bucketMax = this.packetCost * burst;
  }

  /**
   * Whether a handshake from the endpoint record at rec[at..] (see
   * io/endpoint.ts) may be processed now. The key ignores the port and, for
   * IPv6, everything after the /64.
   */
  allow(rec: Uint8Array, at: number, now: number): boolean {
    return this.take(rec, at, now) !== REFUSED;
  }

  /**
   * As allow(), and says whether the source's bucket was full (ALLOWED_FRESH:
   * a new source, or one quiet for burst/rate seconds) — a source that has
   * not been sending, as a legitimate client retrying every REKEY_TIMEOUT.
   * native/src/udp-shed.cc does the same steps in C++; this is its reference.
   */
  take(rec: Uint8Array, at: number, now: number): typeof REFUSED | typeof ALLOWED | typeof ALLOWED_FRESH {
    const key = rateKey(rec, at);
    const b = this.buckets.get(key);
    if (!b) {
      this.buckets.set(key, { tokens: this.bucketMax - this.packetCost, last: now });
      return ALLOWED_FRESH;
    }
    b.tokens = Math.min(this.bucketMax, b.tokens + (now - b.last));
    b.last = now;
    if (b.tokens >= this.packetCost) {
      const full = b.tokens === this.bucketMax;
      b.tokens -= this.packetCost;
      return full ? ALLOWED_FRESH : ALLOWED;
    }
    return REFUSED;
  }

  gc(now: number): void {
    for (const [k, b] of this.buckets) if (now - b.last > IDLE_AFTER) this.buckets.delete(k);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** IPv4: the address as a number (no string to build per packet); IPv6: its /64 as text. */
function rateKey(rec: Uint8Array, at: number): number | string {
  if (rec[at] !== 6) return ((rec[at + 4]! << 24) | (rec[at + 5]! << 16) | (rec[at + 6]! << 8) | rec[at + 7]!) >>> 0;
  let s = '6:';
  for (let i = 0; i < 8; i++) s += rec[at + 4 + i]!.toString(16) + '.';
  return s;
}
