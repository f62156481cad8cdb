/**
 * A peer of the device: its static key and derived handshake constants,
 * endpoint, allowed-IPs membership (held by the device's table), the
 * handshake state, the previous/current/next keypairs, timers, the queue of
 * packets waiting for a handshake, and counters.
 */
import { keyToBase64 } from '../crypto/wireguard-keys.js';
import type { X25519 } from '../crypto/x25519.js';
import { ENDPOINT_SIZE } from '../io/endpoint.js';
import { CookieGenerator, type CookieCrypto } from '../protocol/cookie.js';
import { type InitiationState, type PeerKeys, responderInitialState, ZERO_PSK } from '../protocol/handshake.js';
import type { Keypair } from '../protocol/keypair.js';
import type { Random } from '../protocol/random.js';
import { PeerTimers } from '../protocol/timers.js';

/** The handshake a peer is in, as a tagged union (docs/principles.md §2). */
export type HandshakeState =
  | { readonly kind: 'none' }
  | { readonly kind: 'initiation-sent'; readonly initiation: InitiationState; readonly sentAt: number };

const NO_HANDSHAKE: HandshakeState = { kind: 'none' };

export class Peer {
  readonly publicKey: Uint8Array;
  readonly id: string; // base64 public key
  readonly keys: PeerKeys;
  readonly cookies: CookieGenerator;
  readonly timers: PeerTimers;

  /** Endpoint record (io/endpoint.ts); endpoint[0] === 0 means none known. */
  readonly endpoint = new Uint8Array(ENDPOINT_SIZE);

  handshake: HandshakeState = NO_HANDSHAKE;
  previous: Keypair | null = null;
  current: Keypair | null = null;
  next: Keypair | null = null;

  /** Newest TAI64N seen in an initiation from this peer (replay protection, whitepaper §5.1). */
  latestTimestamp: Uint8Array | null = null;
  lastInitiationConsumed = -Infinity;
  lastSentHandshake = -Infinity;
  /** Set once the receive path asked for a rekey on the current keypair (wireguard-go keepKeyFreshReceiving). */
  sentLastMinuteHandshake = false;

  /** Plaintext packets waiting for a keypair, oldest first. */
  staged: Uint8Array[] = [];

  rxBytes = 0;
  txBytes = 0;
  /** Wall-clock ms of the last completed handshake, 0 if never. */
  lastHandshakeWallMs = 0;

  constructor(publicKey: Uint8Array, ourPrivate: Uint8Array | null, dh: X25519, random: Random, cookieCrypto: CookieCrypto) {
    this.publicKey = new Uint8Array(publicKey);
    this.id = keyToBase64(this.publicKey);
    this.keys = {
      publicKey: this.publicKey,
      presharedKey: ZERO_PSK,
      staticStatic: ourPrivate ? dh.sharedSecret(ourPrivate, this.publicKey) : null,
      initialState: responderInitialState(this.publicKey),
    };
    this.cookies = new CookieGenerator(this.publicKey, cookieCrypto);
    this.timers = new PeerTimers(random);
  }

  hasEndpoint(): boolean {
    return this.endpoint[0] !== 0;
  }

  /** Recomputes the precomputed static-static DH after our private key changed. */
  rekeyStatic(ourPrivate: Uint8Array | null, dh: X25519): void {
    this.keys.staticStatic?.fill(0);
    this.keys.staticStatic = ourPrivate ? dh.sharedSecret(ourPrivate, this.publicKey) : null;
  }

  setPresharedKey(psk: Uint8Array | null): void {
    if (this.keys.presharedKey !== ZERO_PSK) this.keys.presharedKey.fill(0);
    this.keys.presharedKey = psk && psk.some((b) => b !== 0) ? new Uint8Array(psk) : ZERO_PSK;
  }

  hasPresharedKey(): boolean {
    return this.keys.presharedKey !== ZERO_PSK;
  }

  /** Keys are never printed. */
  toJSON(): object {
    return { publicKey: this.id, rxBytes: this.rxBytes, txBytes: this.txBytes, lastHandshakeWallMs: this.lastHandshakeWallMs };
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `Peer(${this.id})`;
  }
}
