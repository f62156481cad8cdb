/**
 * WireGuard's handshake messages (whitepaper §5.4.2 "First Message:
 * Initiator to Responder", §5.4.3 "Second Message: Responder to Initiator",
 * §5.4.5 "Transport Data Key Derivation"): the Noise_IKpsk2 messages of
 * noise.ts with the WireGuard prologue and framing (type, sender and
 * receiver indices). MACs are added and checked by cookie.ts.
 *
 * Pure: keys, indices and the timestamp come in; bytes and key material go
 * out. Returns null for anything that does not authenticate.
 */
import type { X25519 } from '../crypto/x25519.js';
import { IDENTIFIER } from './constants.js';
import { Initiation, MSG_INITIATION, MSG_RESPONSE, readU32, Response, writeType, writeU32 } from './messages.js';
import { initialState, readMessage1, readMessage2, SymmetricState, writeMessage1, writeMessage2 } from './noise.js';
import { TAI64N_LEN } from './tai64n.js';

export const ZERO_PSK = new Uint8Array(32);

/**
 * "H = HASH(HASH(CONSTRUCTION) || IDENTIFIER); H = HASH(H || S_pub_r)": the
 * state before the first message depends only on the responder's static key,
 * so it is computed once per key and cloned per handshake.
 */
export function responderInitialState(responderStatic: Uint8Array): SymmetricState {
  return initialState(IDENTIFIER, responderStatic);
}

/** What an initiator keeps between sending the initiation and receiving the response. */
export interface InitiationState {
  readonly localIndex: number;
  readonly ephemeralPrivate: Uint8Array;
  readonly st: SymmetricState;
}

export interface Initiator {
  staticPrivate: Uint8Array;
  staticPublic: Uint8Array;
}

export interface PeerKeys {
  publicKey: Uint8Array;
  presharedKey: Uint8Array;
  /** DH(S_priv_ours, S_pub_peer), null when the peer's key is a low-order point. */
  staticStatic: Uint8Array | null;
  /** responderInitialState(publicKey), cached. */
  initialState: SymmetricState;
}

/**
 * Writes the 148-byte initiation (without MACs) into out[0, 148) and returns
 * the state needed to consume the response.
 */
export function createInitiation(dh: X25519, local: Initiator, peer: PeerKeys, localIndex: number, timestamp: Uint8Array, out: Uint8Array): InitiationState | null {
  if (!peer.staticStatic || timestamp.length !== TAI64N_LEN) return null;
  const ephemeralPrivate = dh.generatePrivateKey();
  const st = peer.initialState.clone();
  const noise = writeMessage1(st, dh, {
    staticPublic: local.staticPublic,
    ephemeralPrivate,
    ephemeralPublic: dh.publicKey(ephemeralPrivate),
    remoteStatic: peer.publicKey,
    staticStatic: peer.staticStatic,
  }, timestamp);
  if (!noise) return null;
  writeType(out, 0, MSG_INITIATION);
  writeU32(out, Initiation.SENDER, localIndex);
  out.set(noise, Initiation.EPHEMERAL);
  return { localIndex, ephemeralPrivate, st };
}

export interface ConsumedInitiation<P> {
  peer: P;
  remoteIndex: number;
  remoteEphemeral: Uint8Array;
  timestamp: Uint8Array;
  st: SymmetricState;
}

/**
 * Reads an initiation addressed to us (ourInitial = responderInitialState(our public key)).
 * `lookup` maps the initiator's static public key to a known peer.
 */
export function consumeInitiation<P>(
  dh: X25519,
  ourPrivate: Uint8Array,
  ourInitial: SymmetricState,
  msg: Uint8Array,
  lookup: (staticPublic: Uint8Array) => { peer: P; keys: PeerKeys } | null,
): ConsumedInitiation<P> | null {
  const st = ourInitial.clone();
  let found: { peer: P; keys: PeerKeys } | null = null;
  const read = readMessage1(st, dh, ourPrivate, msg.subarray(Initiation.EPHEMERAL, Initiation.MAC1), (rs) => {
    found = lookup(rs);
    return found?.keys.staticStatic ?? null;
  });
  if (!read || !found) return null;
  return {
    peer: (found as { peer: P }).peer,
    remoteIndex: readU32(msg, Initiation.SENDER),
    remoteEphemeral: read.remoteEphemeral,
    timestamp: read.payload,
    st,
  };
}

export interface SessionKeys {
  sendKey: Uint8Array;
  receiveKey: Uint8Array;
}

/**
 * Writes the 92-byte response (without MACs) to a consumed initiation into
 * out[0, 92) and derives the responder's transport keys
 * ("T_recv_r, T_send_r = KDF2(C, ε)" with the initiator's send key first).
 */
export function createResponse(dh: X25519, consumed: ConsumedInitiation<unknown>, peer: PeerKeys, localIndex: number, out: Uint8Array): SessionKeys | null {
  const ephemeralPrivate = dh.generatePrivateKey();
  const noise = writeMessage2(consumed.st, dh, {
    ephemeralPrivate,
    ephemeralPublic: dh.publicKey(ephemeralPrivate),
    remoteEphemeral: consumed.remoteEphemeral,
    remoteStatic: peer.publicKey,
    presharedKey: peer.presharedKey,
  }, new Uint8Array(0));
  ephemeralPrivate.fill(0);
  if (!noise) return null;
  writeType(out, 0, MSG_RESPONSE);
  writeU32(out, Response.SENDER, localIndex);
  writeU32(out, Response.RECEIVER, consumed.remoteIndex);
  out.set(noise, Response.EPHEMERAL);
  const [initiatorSend, responderSend] = consumed.st.split();
  return { sendKey: responderSend, receiveKey: initiatorSend };
}

/** Reads a response to our initiation; derives the initiator's transport keys. */
export function consumeResponse(dh: X25519, local: Initiator, state: InitiationState, peer: PeerKeys, msg: Uint8Array): (SessionKeys & { remoteIndex: number }) | null {
  const st = state.st.clone(); // a forged response must not spoil the state
  const read = readMessage2(st, dh, {
    staticPrivate: local.staticPrivate,
    ephemeralPrivate: state.ephemeralPrivate,
    presharedKey: peer.presharedKey,
  }, msg.subarray(Response.EPHEMERAL, Response.MAC1));
  if (!read || read.payload.length !== 0) {
    st.wipe();
    return null;
  }
  const [initiatorSend, responderSend] = st.split();
  return { sendKey: initiatorSend, receiveKey: responderSend, remoteIndex: readU32(msg, Response.SENDER) };
}
