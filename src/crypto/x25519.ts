/**
 * X25519 Diffie-Hellman (RFC 7748), the DH of whitepaper §5.4, behind one
 * interface with two backends:
 *
 * - `nobleX25519`: @noble/curves, pure TypeScript (~650 ops/s here).
 * - `nodeX25519`: node:crypto (OpenSSL), ~30× faster on this machine
 *   (bench/crypto.ts measures both). It is the default.
 *
 * Both pass the RFC 7748 vectors and agree on random inputs (test/property).
 * A shared secret that is all zeros (the peer sent a low-order point) is
 * reported as `null`; the handshake then fails, as in wireguard-go.
 */
import { x25519 as nobleCurve } from '@noble/curves/ed25519.js';
import { createPrivateKey, createPublicKey, diffieHellman, randomFillSync, type KeyObject } from 'node:crypto';

export const KEY_LEN = 32;

export interface X25519 {
  readonly name: string;
  /** A new clamped private key from the OS random source. */
  generatePrivateKey(): Uint8Array;
  publicKey(privateKey: Uint8Array): Uint8Array;
  /** DH(private, public); null when the result is all zeros. */
  sharedSecret(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null;
}

function checkKey(k: Uint8Array, what: string): void {
  if (!(k instanceof Uint8Array) || k.length !== KEY_LEN) {
    throw new TypeError(`${what} must be a ${KEY_LEN}-byte Uint8Array`);
  }
}

/** Clamps a private key in place (RFC 7748 §5, "decodeScalar25519"), as `wg genkey` does. */
export function clamp(k: Uint8Array): Uint8Array {
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return k;
}

function isZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

export const nobleX25519: X25519 = {
  name: 'noble',
  generatePrivateKey() {
    return clamp(randomFillSync(new Uint8Array(KEY_LEN)));
  },
  publicKey(sk) {
    checkKey(sk, 'private key');
    return nobleCurve.getPublicKey(sk);
  },
  sharedSecret(sk, pk) {
    checkKey(sk, 'private key');
    checkKey(pk, 'public key');
    try {
      const s = nobleCurve.getSharedSecret(sk, pk);
      return isZero(s) ? null : s;
    } catch {
      return null; // noble throws on an all-zero result
    }
  },
};

// DER wrappers for raw X25519 keys (RFC 8410): PKCS#8 private, SPKI public.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');

/**
 * node:crypto needs KeyObjects; building one costs more than the DH itself,
 * so KeyObjects are cached per private-key array (a WeakMap on the array's
 * identity, so no copy of the secret is kept anywhere else). Callers treat
 * key arrays as immutable: a changed key is a new array.
 */
const privateKeyCache = new WeakMap<Uint8Array, KeyObject>();
function privateKeyObject(sk: Uint8Array): KeyObject {
  let ko = privateKeyCache.get(sk);
  if (!ko) {
    const der = Buffer.concat([PKCS8_PREFIX, sk]);
    ko = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    der.fill(0);
    privateKeyCache.set(sk, ko);
  }
  return ko;
}

export const nodeX25519: X25519 = {
  name: 'node',
  generatePrivateKey() {
    return clamp(randomFillSync(new Uint8Array(KEY_LEN)));
  },
  publicKey(sk) {
    checkKey(sk, 'private key');
    const der = createPublicKey(privateKeyObject(sk)).export({ format: 'der', type: 'spki' });
    return new Uint8Array(der.subarray(der.length - KEY_LEN));
  },
  sharedSecret(sk, pk) {
    checkKey(sk, 'private key');
    checkKey(pk, 'public key');
    try {
      const pub = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, pk]), format: 'der', type: 'spki' });
      const s = diffieHellman({ privateKey: privateKeyObject(sk), publicKey: pub });
      const out = new Uint8Array(s);
      return isZero(out) ? null : out;
    } catch {
      return null; // OpenSSL refuses an all-zero shared secret
    }
  },
};

