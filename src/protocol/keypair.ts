/**
 * A transport keypair (whitepaper §5.4.5): the two symmetric keys derived at
 * the end of a handshake, the send counter, the receive replay window, and
 * the indices that name it on the wire.
 */
import { ReplayFilter } from './replay.js';

export class Keypair {
  sendCounter = 0;
  readonly replay = new ReplayFilter();

  constructor(
    readonly sendKey: Uint8Array,
    readonly receiveKey: Uint8Array,
    /** Whether we were the initiator of the handshake that made it (whitepaper §6.2: only initiators rekey on time). */
    readonly isInitiator: boolean,
    /** Monotonic ms when derived. */
    readonly createdAt: number,
    readonly localIndex: number,
    readonly remoteIndex: number,
  ) {}

  /** Zeroes the keys (whitepaper §6.3 requires key material to be erased). */
  wipe(): void {
    this.sendKey.fill(0);
    this.receiveKey.fill(0);
  }

  /** Keys are never printed. */
  toJSON(): object {
    return { localIndex: this.localIndex, remoteIndex: this.remoteIndex, isInitiator: this.isInitiator, sendCounter: this.sendCounter };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Keypair(local=${this.localIndex}, remote=${this.remoteIndex}, initiator=${this.isInitiator}, keys=[redacted])`;
  }
}
