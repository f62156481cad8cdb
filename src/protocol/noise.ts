/**
 * Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s (noiseprotocol.org rev 34; whitepaper
 * §5.4) — the symmetric state and the two messages of the IK pattern with the
 * psk2 modifier:
 *
 *     IKpsk2:
 *       <- s
 *       ...
 *       -> e, es, s, ss
 *       <- e, ee, se, psk
 *
 * This file knows nothing of WireGuard framing (types, indices, MACs); the
 * prologue and payloads are parameters, so the cacophony test vectors
 * (test/vectors) exercise exactly the code WireGuard uses, where the
 * prologue is IDENTIFIER, the first payload a TAI64N timestamp and the second
 * empty (handshake.ts).
 */
import { aeadOpen, aeadSeal, TAG_LEN } from '../crypto/aead.js';
import { hash, kdf } from '../crypto/blake2s.js';
import type { X25519 } from '../crypto/x25519.js';
import { CONSTRUCTION } from './constants.js';

export const DH_LEN = 32;

/** Noise §5.2 SymmetricState: chaining key ck, handshake hash h, cipher key k with nonce n. */
export class SymmetricState {
  ck: Uint8Array;
  h: Uint8Array;
  private k: Uint8Array | null = null;
  private n = 0;

  private constructor(ck: Uint8Array, h: Uint8Array) {
    this.ck = ck;
    this.h = h;
  }

  /**
   * InitializeSymmetric(protocol_name) then MixHash(prologue) (Noise §5.2, §5.3).
   * WireGuard: "C = HASH(CONSTRUCTION); H = HASH(C || IDENTIFIER)".
   */
  static initialize(prologue: Uint8Array, protocolName: Uint8Array = CONSTRUCTION): SymmetricState {
    let h: Uint8Array;
    if (protocolName.length <= 32) {
      h = new Uint8Array(32);
      h.set(protocolName);
    } else {
      h = hash(protocolName);
    }
    const st = new SymmetricState(h.slice(), h);
    st.mixHash(prologue);
    return st;
  }

  /** A copy, so that a precomputed prefix (e.g. after the pre-message) can be reused. */
  clone(): SymmetricState {
    const c = new SymmetricState(this.ck.slice(), this.h.slice());
    c.k = this.k ? this.k.slice() : null;
    c.n = this.n;
    return c;
  }

  /** MixHash(data): h = HASH(h || data). */
  mixHash(data: Uint8Array): void {
    this.h = hash(this.h, data);
  }

  /** MixKey(ikm): ck, k = KDF2(ck, ikm); n = 0. */
  mixKey(ikm: Uint8Array): void {
    const [ck, k] = kdf(2, this.ck, ikm);
    this.ck.fill(0);
    this.k?.fill(0);
    this.ck = ck;
    this.k = k;
    this.n = 0;
  }

  /** MixKeyAndHash(ikm): ck, t, k = KDF3(ck, ikm); MixHash(t); n = 0 (the psk token). */
  mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, t, k] = kdf(3, this.ck, ikm);
    this.ck.fill(0);
    this.k?.fill(0);
    this.ck = ck;
    this.mixHash(t);
    t.fill(0);
    this.k = k;
    this.n = 0;
  }

  /** EncryptAndHash(p): c = AEAD(k, n++, p, h); MixHash(c). */
  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    if (!this.k) throw new Error('encryptAndHash before any key was mixed'); // misuse, not network input
    const c = aeadSeal(this.k, this.n++, plaintext, this.h);
    this.mixHash(c);
    return c;
  }

  /** DecryptAndHash(c): p = AEAD-open(k, n++, c, h); MixHash(c). null on failure (state unchanged). */
  decryptAndHash(ciphertext: Uint8Array): Uint8Array | null {
    if (!this.k) throw new Error('decryptAndHash before any key was mixed');
    const p = aeadOpen(this.k, this.n, ciphertext, this.h);
    if (!p) return null;
    this.n++;
    this.mixHash(ciphertext);
    return p;
  }

  /** Split(): (k1, k2) = KDF2(ck, ε). k1 protects initiator→responder. Wipes the state. */
  split(): [Uint8Array, Uint8Array] {
    const [k1, k2] = kdf(2, this.ck, new Uint8Array(0));
    this.wipe();
    return [k1, k2];
  }

  wipe(): void {
    this.ck.fill(0);
    this.k?.fill(0);
    this.k = null;
  }
}

/**
 * The responder's pre-message "<- s": MixHash(rs).
 * WireGuard: "H = HASH(H || S_pub_r)".
 */
export function initialState(prologue: Uint8Array, responderStatic: Uint8Array): SymmetricState {
  const st = SymmetricState.initialize(prologue);
  st.mixHash(responderStatic);
  return st;
}

export interface InitiatorKeys {
  staticPublic: Uint8Array;
  ephemeralPrivate: Uint8Array;
  ephemeralPublic: Uint8Array;
  remoteStatic: Uint8Array;
  /** DH(S_priv_i, S_pub_r), precomputed per peer (whitepaper §5.4.2 allows it). */
  staticStatic: Uint8Array;
}

/**
 * Writes message 1, "-> e, es, s, ss" + payload, into a new array:
 * e (32) || AEAD(s) (48) || AEAD(payload) (|payload| + 16).
 * Returns null if a DH yields zero (the remote static key is a low-order point).
 */
export function writeMessage1(st: SymmetricState, dh: X25519, keys: InitiatorKeys, payload: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(DH_LEN + DH_LEN + TAG_LEN + payload.length + TAG_LEN);
  // e: "C = KDF1(C, E_pub_i); msg.unencrypted_ephemeral = E_pub_i; H = HASH(H || msg.unencrypted_ephemeral)"
  // (psk modifier: the e token also calls MixKey, Noise §9.2).
  out.set(keys.ephemeralPublic, 0);
  st.mixHash(keys.ephemeralPublic);
  st.mixKey(keys.ephemeralPublic);
  // es: "C, k = KDF2(C, DH(E_priv_i, S_pub_r))"
  const es = dh.sharedSecret(keys.ephemeralPrivate, keys.remoteStatic);
  if (!es) return null;
  st.mixKey(es);
  es.fill(0);
  // s: "msg.encrypted_static = AEAD(k, 0, S_pub_i, H); H = HASH(H || msg.encrypted_static)"
  out.set(st.encryptAndHash(keys.staticPublic), DH_LEN);
  // ss: "C, k = KDF2(C, DH(S_priv_i, S_pub_r))"
  st.mixKey(keys.staticStatic);
  // payload: "msg.encrypted_timestamp = AEAD(k, 0, TAI64N(), H); H = HASH(H || msg.encrypted_timestamp)"
  out.set(st.encryptAndHash(payload), DH_LEN + DH_LEN + TAG_LEN);
  return out;
}

/** What a responder read from message 1: copies, never views of the message (its buffer is reused). */
export interface Message1Read {
  remoteEphemeral: Uint8Array;
  remoteStatic: Uint8Array;
  payload: Uint8Array;
}

/**
 * Reads message 1 as the responder. `staticStaticOf(rs)` returns the
 * precomputed DH(S_priv_r, S_pub_i) for a known initiator, or null for an
 * unknown one (the message is then rejected). null on any failure.
 */
export function readMessage1(
  st: SymmetricState,
  dh: X25519,
  staticPrivate: Uint8Array,
  msg: Uint8Array,
  staticStaticOf: (remoteStatic: Uint8Array) => Uint8Array | null,
): Message1Read | null {
  const payloadLen = msg.length - (DH_LEN + DH_LEN + TAG_LEN + TAG_LEN);
  if (payloadLen < 0) return null;
  // A copy whatever msg is: it is returned, and a Buffer's slice() would be a view of the caller's (reused) batch.
  const re = new Uint8Array(msg.subarray(0, DH_LEN));
  st.mixHash(re);
  st.mixKey(re);
  const es = dh.sharedSecret(staticPrivate, re);
  if (!es) return null;
  st.mixKey(es);
  es.fill(0);
  const rs = st.decryptAndHash(msg.subarray(DH_LEN, DH_LEN + DH_LEN + TAG_LEN));
  if (!rs) return null;
  const ss = staticStaticOf(rs);
  if (!ss) return null;
  st.mixKey(ss);
  const payload = st.decryptAndHash(msg.subarray(DH_LEN + DH_LEN + TAG_LEN));
  if (!payload) return null;
  return { remoteEphemeral: re, remoteStatic: rs, payload };
}

export interface ResponderKeys {
  ephemeralPrivate: Uint8Array;
  ephemeralPublic: Uint8Array;
  remoteEphemeral: Uint8Array;
  remoteStatic: Uint8Array;
  presharedKey: Uint8Array;
}

/**
 * Writes message 2, "<- e, ee, se, psk" + payload:
 * e (32) || AEAD(payload) (|payload| + 16). null if a DH yields zero.
 */
export function writeMessage2(st: SymmetricState, dh: X25519, keys: ResponderKeys, payload: Uint8Array): Uint8Array | null {
  const out = new Uint8Array(DH_LEN + payload.length + TAG_LEN);
  // e: "C = KDF1(C, E_pub_r); H = HASH(H || msg.unencrypted_ephemeral)"
  out.set(keys.ephemeralPublic, 0);
  st.mixHash(keys.ephemeralPublic);
  st.mixKey(keys.ephemeralPublic);
  // ee: "C = KDF1(C, DH(E_priv_r, E_pub_i))"
  const ee = dh.sharedSecret(keys.ephemeralPrivate, keys.remoteEphemeral);
  if (!ee) return null;
  st.mixKey(ee);
  ee.fill(0);
  // se: "C = KDF1(C, DH(E_priv_r, S_pub_i))"
  const se = dh.sharedSecret(keys.ephemeralPrivate, keys.remoteStatic);
  if (!se) return null;
  st.mixKey(se);
  se.fill(0);
  // psk: "C, τ, k = KDF3(C, Q); H = HASH(H || τ)"
  st.mixKeyAndHash(keys.presharedKey);
  // payload: "msg.encrypted_nothing = AEAD(k, 0, ε, H); H = HASH(H || msg.encrypted_nothing)"
  out.set(st.encryptAndHash(payload), DH_LEN);
  return out;
}

export interface InitiatorReadKeys {
  staticPrivate: Uint8Array;
  ephemeralPrivate: Uint8Array;
  presharedKey: Uint8Array;
}

/** Reads message 2 as the initiator; returns the payload or null. */
export function readMessage2(st: SymmetricState, dh: X25519, keys: InitiatorReadKeys, msg: Uint8Array): { remoteEphemeral: Uint8Array; payload: Uint8Array } | null {
  if (msg.length < DH_LEN + TAG_LEN) return null;
  const re = new Uint8Array(msg.subarray(0, DH_LEN)); // a copy, as in readMessage1
  st.mixHash(re);
  st.mixKey(re);
  const ee = dh.sharedSecret(keys.ephemeralPrivate, re);
  if (!ee) return null;
  st.mixKey(ee);
  ee.fill(0);
  const se = dh.sharedSecret(keys.staticPrivate, re);
  if (!se) return null;
  st.mixKey(se);
  se.fill(0);
  st.mixKeyAndHash(keys.presharedKey);
  const payload = st.decryptAndHash(msg.subarray(DH_LEN));
  if (!payload) return null;
  return { remoteEphemeral: re, payload };
}
