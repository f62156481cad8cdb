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
 *      - `nobleTransportAead`: noble's `chacha20` (with output buffer and
 *        block counter) plus `poly1305`, composed here per RFC 8439 §2.8.
 *        This composition costs about half of noble's own
 *        `chacha20poly1305().encrypt()` per 1420-byte packet (bench/crypto.ts)
 *        and is checked equal to it (RFC 8439 §A.5 vector and fast-check).
 *      - `nodeTransportAead`: node:crypto (OpenSSL). Faster per packet here
 *        but allocates a cipher object per call.
 *
 * 2. The handshake (`aeadSeal`/`aeadOpen`): short messages with the handshake
 *    hash as associated data; noble's one-shot AEAD, allocation is fine.
 */
import { chacha20, chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { poly1305 } from '@noble/ciphers/_poly1305.js';
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

// Scratch state of the noble composition. Single-threaded use; every call
// fully rewrites what it reads.
const nonce = new Uint8Array(12);
const polyKey = new Uint8Array(32);
const ZERO32 = new Uint8Array(32);
const ZERO16 = new Uint8Array(16);
const lengths = new Uint8Array(16);
const tag = new Uint8Array(16);

/** RFC 8439 §2.8.1: tag = Poly1305(otk, AAD || pad16 || C || pad16 || LE64(|AAD|) || LE64(|C|)), AAD empty. */
function tagOf(key: Uint8Array, buf: Uint8Array, at: number, len: number, out: Uint8Array): void {
  // §2.6: the one-time Poly1305 key is the first 32 bytes of block 0.
  chacha20(key, nonce, ZERO32, polyKey, 0);
  const p = poly1305.create(polyKey);
  p.update(buf.subarray(at, at + len));
  if (len % 16 !== 0) p.update(ZERO16.subarray(0, 16 - (len % 16)));
  // LE64(0) for the AAD length, then LE64(len).
  lengths.fill(0);
  lengths[8] = len & 0xff;
  lengths[9] = (len >>> 8) & 0xff;
  lengths[10] = (len >>> 16) & 0xff;
  lengths[11] = (len >>> 24) & 0xff;
  p.update(lengths);
  p.digestInto(out);
  polyKey.fill(0);
}

function constantTimeEqual16(a: Uint8Array, b: Uint8Array, bAt: number): boolean {
  let d = 0;
  for (let i = 0; i < 16; i++) d |= a[i]! ^ b[bAt + i]!;
  return d === 0;
}

export const nobleTransportAead: TransportAead = {
  name: 'noble',
  seal(key, counter, buf, at, len) {
    writeNonce(nonce, counter);
    const region = buf.subarray(at, at + len);
    // §2.8: the plaintext is encrypted with block counter 1 onwards.
    chacha20(key, nonce, region, region, 1);
    tagOf(key, buf, at, len, tag);
    buf.set(tag, at + len);
  },
  open(key, counter, buf, at, len) {
    if (len < TAG_LEN) return false;
    const clen = len - TAG_LEN;
    writeNonce(nonce, counter);
    tagOf(key, buf, at, clen, tag);
    if (!constantTimeEqual16(tag, buf, at + clen)) return false;
    const region = buf.subarray(at, at + clen);
    chacha20(key, nonce, region, region, 1);
    return true;
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
