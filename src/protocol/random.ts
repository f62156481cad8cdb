/**
 * Randomness the protocol needs (ephemeral keys come from the X25519
 * backend): session indices, cookie secrets and nonces, timer jitter.
 * Injected so tests can be deterministic; the default is the OS CSPRNG.
 */
import { randomFillSync } from 'node:crypto';

export interface Random {
  /** Fills `buf` with random bytes. */
  fill(buf: Uint8Array): void;
  /** A uniformly random 32-bit unsigned integer. */
  u32(): number;
  /** A uniformly random integer in [0, max). */
  int(max: number): number;
}

const scratch = new Uint32Array(1);

export const systemRandom: Random = {
  fill(buf) {
    randomFillSync(buf);
  },
  u32() {
    randomFillSync(scratch);
    return scratch[0]!;
  },
  int(max) {
    return systemRandom.u32() % max;
  },
};
