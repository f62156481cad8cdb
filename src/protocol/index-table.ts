/**
 * Receiver indices (whitepaper §5.4.2 "sender index"): each handshake and
 * each keypair has a random 32-bit local index that the peer puts in the
 * receiver field of its messages, so an incoming message finds its state in
 * O(1) without revealing the peer's identity.
 */
import type { Random } from './random.js';

export class IndexTable<T> {
  private readonly map = new Map<number, T>();
  constructor(private readonly random: Random) {}

  /** Registers `value` under a fresh random index and returns the index. */
  allocate(value: T): number {
    for (;;) {
      const idx = this.random.u32();
      if (!this.map.has(idx)) {
        this.map.set(idx, value);
        return idx;
      }
    }
  }

  /** Points an existing index at another value (a handshake's index becomes its keypair's). */
  replace(index: number, value: T): void {
    this.map.set(index, value);
  }

  get(index: number): T | undefined {
    return this.map.get(index);
  }

  delete(index: number): void {
    this.map.delete(index);
  }

  get size(): number {
    return this.map.size;
  }
}
