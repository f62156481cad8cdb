/**
 * ChaCha20-Poly1305 (RFC 8439 §2.8) — the AEAD of whitepaper §5.4.
 *
 * Two uses with different needs:
 *
 * 1. The transport data path (`TransportAead`): one 64-bit counter nonce
 *    (whitepaper §5.4.6: 32 zero bits, then the little-endian counter), empty
 *    associated data, and the packet encrypted in place inside a batch slot
 *    with the tag written right after it — no output allocation, no copy.
 *    Backends:
 *      - `nobleTransportAead`: noble's public `chacha20poly1305` with an
 *        output buffer: the slot itself, so nothing is allocated for the
 *        output and the packet is encrypted in place. (An earlier version
 *        composed `chacha20` with noble's internal `_poly1305.js` to avoid the
 *        one-shot's output allocation; with the output argument the public
 *        API costs the same per 1420-byte packet: three alternated rounds
 *        side by side, 119–127 µs composed vs 121–144 µs public, on this
 *        2-vCPU machine under a load of 12.) The property test compares it
 *        with node:crypto and the native backend on random inputs.
 *      - `nodeTransportAead`: node:crypto (OpenSSL). Faster per packet here
 *        but allocates a cipher object per call.
 *
 * 2. The handshake (`aeadSeal`/`aeadOpen`): short messages with the handshake
 *    hash as associated data; noble's one-shot AEAD, allocation is fine.
 */
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { createCipheriv, createDecipheriv, timingSafeEqual } from 'node:crypto';

export const TAG_LEN = 16;
export const AEAD_KEY_LEN = 32;

export interface TransportAead {
  readonly name: string;
  /**
   * Encrypts buf[at, at+len) in place with nonce(counter) and writes the
   * 16-byte tag at buf[at+len, at+len+16).
   */
  seal(key: Uint8Array, counter: number, buf: Uint8Array, at: number, len: number): void;
  /**
   * Authenticates and decrypts buf[at, at+len) in place, where len includes
   * the tag; the plaintext is buf[at, at+len-16). Returns false (and leaves
   * the ciphertext untouched) when the tag does not verify.
   */
  open(key: Uint8Array, counter: number, buf: Uint8Array, at: number, len: number): boolean;
}

/** Writes the 96-bit nonce 0^32 || LE64(counter) into n (whitepaper §5.4.6). */
function writeNonce(n: Uint8Array, counter: number): void {
  n[0] = n[1] = n[2] = n[3] = 0;
  let lo = counter >>> 0;
  let hi = Math.floor(counter / 0x100000000) >>> 0;
  for (let i = 4; i < 8; i++) {
    n[i] = lo & 0xff;
    lo >>>= 8;
  }
  for (let i = 8; i < 12; i++) {
    n[i] = hi & 0xff;
    hi >>>= 8;
  }
}

// The nonce scratch of the noble backend. Single-threaded use; every call
// rewrites it before use.
const nonce = new Uint8Array(12);

export const nobleTransportAead: TransportAead = {
  name: 'noble',
  seal(key, counter, buf, at, len) {
    writeNonce(nonce, counter);
    // Output into the slot itself: the plaintext is encrypted where it lies and the tag follows it.
    chacha20poly1305(key, nonce).encrypt(buf.subarray(at, at + len), buf.subarray(at, at + len + TAG_LEN));
  },
  open(key, counter, buf, at, len) {
    if (len < TAG_LEN) return false;
    writeNonce(nonce, counter);
    try {
      // noble checks the tag before it writes anything (RFC 8439 §4), so a forgery leaves the slot as it was.
      chacha20poly1305(key, nonce).decrypt(buf.subarray(at, at + len), buf.subarray(at, at + len - TAG_LEN));
      return true;
    } catch {
      return false;
    }
  },
};

const nodeNonce = Buffer.alloc(12);

export const nodeTransportAead: TransportAead = {
  name: 'node',
  seal(key, counter, buf, at, len) {
    writeNonce(nodeNonce, counter);
    const c = createCipheriv('chacha20-poly1305', key, nodeNonce, { authTagLength: TAG_LEN });
    const out = c.update(buf.subarray(at, at + len));
    c.final();
    buf.set(out, at);
    buf.set(c.getAuthTag(), at + len);
  },
  open(key, counter, buf, at, len) {
    if (len < TAG_LEN) return false;
    const clen = len - TAG_LEN;
    writeNonce(nodeNonce, counter);
    const d = createDecipheriv('chacha20-poly1305', key, nodeNonce, { authTagLength: TAG_LEN });
    d.setAuthTag(buf.subarray(at + clen, at + len));
    const out = d.update(buf.subarray(at, at + clen));
    try {
      d.final();
    } catch {
      return false;
    }
    buf.set(out, at);
    return true;
  },
};

/** AEAD(key, counter, plaintext, aad) for handshake messages (whitepaper §5.4.2–§5.4.4). */
export function aeadSeal(key: Uint8Array, counter: number, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const n = new Uint8Array(12);
  writeNonce(n, counter);
  return chacha20poly1305(key, n, aad).encrypt(plaintext);
}

/** The inverse of aeadSeal; null when authentication fails. */
export function aeadOpen(key: Uint8Array, counter: number, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array | null {
  if (ciphertext.length < TAG_LEN) return null;
  const n = new Uint8Array(12);
  writeNonce(n, counter);
  try {
    return chacha20poly1305(key, n, aad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

/** Constant-time comparison of two equal-length byte strings. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
