/**
 * A seedable generator for the fuzzers (datagram-fuzz.ts, the UAPI fuzz), so
 * that a failure names the seed that reproduces it. xorshift32 (Marsaglia
 * 2003): fast, and good enough to pick mutations.
 */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 0x9e3779b9;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return this.u32() % n;
  }
  fill(b: Uint8Array, at = 0, len = b.length - at): void {
    const end = at + len;
    let i = at;
    for (; i + 4 <= end; i += 4) {
      const x = this.u32();
      b[i] = x;
      b[i + 1] = x >>> 8;
      b[i + 2] = x >>> 16;
      b[i + 3] = x >>> 24;
    }
    for (const x = this.u32(); i < end; i++) b[i] = x >>> (8 * (i & 3));
  }
}

