/**
 * Sliding-window replay protection for transport counters (whitepaper §5.4.6;
 * the algorithm of RFC 6479 "IPsec Anti-Replay Algorithm without Bit
 * Shifting", as in the kernel's and wireguard-go's replay filter).
 *
 * The window is a ring of 256 blocks of 32 bits (8192 bits; JS bitwise
 * operators are 32-bit). Moving the window forward clears whole blocks
 * instead of shifting bits. Counters up to (ring − 1 block) = 8160 behind the
 * highest seen are accepted once; anything older is rejected.
 *
 * Must be called only after the packet authenticated (an attacker must not
 * be able to move the window).
 */
const BLOCK_BITS = 32;
const RING_BLOCKS = 256;
const BLOCK_MASK = RING_BLOCKS - 1;
export const REPLAY_WINDOW = (RING_BLOCKS - 1) * BLOCK_BITS; // 8160 ≥ the spec's 8128

export class ReplayFilter {
  private last = 0;
  private readonly ring = new Uint32Array(RING_BLOCKS);

  reset(): void {
    this.last = 0;
    this.ring.fill(0);
  }

  /** True if `counter` (< limit) was not seen before and is inside the window; records it. */
  validate(counter: number, limit: number): boolean {
    if (counter >= limit || counter < 0) return false;
    const indexBlock = Math.floor(counter / BLOCK_BITS);
    if (counter > this.last) {
      // Move the window forward, clearing the blocks it passes (at most all of them).
      const current = Math.floor(this.last / BLOCK_BITS);
      const diff = Math.min(indexBlock - current, RING_BLOCKS);
      for (let i = current + 1; i <= current + diff; i++) this.ring[i & BLOCK_MASK] = 0;
      this.last = counter;
    } else if (this.last - counter > REPLAY_WINDOW) {
      return false; // behind the window
    }
    const block = indexBlock & BLOCK_MASK;
    const bit = 1 << (counter % BLOCK_BITS);
    const old = this.ring[block]!;
    if (old & bit) return false;
    this.ring[block] = old | bit;
    return true;
  }
}
