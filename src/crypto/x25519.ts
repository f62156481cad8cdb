/**
 * X25519 Diffie-Hellman (RFC 7748), the DH of whitepaper §5.4, behind one
 * interface with two backends:
 *
 * - `nobleX25519`: @noble/curves, pure TypeScript.
 * - `nodeX25519`: node:crypto (OpenSSL), about 28× faster on this machine:
 *   28,151 vs 1,018 DH/s in the README's latest benchmark run
 *   (bench/in-process.ts, benchX25519, measures both). It is the default.
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

// node:crypto works on KeyObjects. Building them from DER costs ten times
// the DH itself (~3k/s here), from JWK ~30k/s; exporting as JWK is cheap too.
// So keys cross the boundary as JWK, and the private key's KeyObject is
// cached per key array (a WeakMap on the array's identity, so no copy of the
// secret is kept anywhere else; callers treat key arrays as immutable).
//
// Node's JWK import of an OKP private key builds the key from `d` alone
// (EVP_PKEY_new_raw_private_key, which derives the public half) and only
// checks that `x` is a string, so we pass an empty one rather than compute
// the public key first. Should a Node version check `x`, the import throws
// and the DER path takes over; the vectors and the backend-agreement property
// would catch any other change.
//
// generateKeyPairSync is deliberately not used: in Node 20 a garbage
// collection during the JWK export of a generated key can finalize the key's
// KeyGenJob, whose destructor takes the mutex the export is holding — a
// self-deadlock of the main thread (gdb: ~KeyGenJob under ExportJWKEdKey,
// seen in the idle-peer benchmark about one run in three). Random bytes are
// as good a private key and cost less.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const privateKeyCache = new WeakMap<Uint8Array, KeyObject>();
const publicKeyCache = new WeakMap<Uint8Array, KeyObject>();

const b64u = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('base64url');
const fromB64u = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64url'));

function importPrivateKey(sk: Uint8Array): KeyObject {
  try {
    return createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(sk), x: '' }, format: 'jwk' });
  } catch {
    const der = Buffer.concat([PKCS8_PREFIX, sk]);
    try {
      return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } finally {
      der.fill(0);
    }
  }
}

function privateKeyObject(sk: Uint8Array): KeyObject {
  let ko = privateKeyCache.get(sk);
  if (!ko) {
    ko = importPrivateKey(sk);
    privateKeyCache.set(sk, ko);
  }
  return ko;
}

function publicKeyObject(pk: Uint8Array): KeyObject {
  let ko = publicKeyCache.get(pk);
  if (!ko) {
    ko = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pk) }, format: 'jwk' });
    publicKeyCache.set(pk, ko);
  }
  return ko;
}

export const nodeX25519: X25519 = {
  name: 'node',
  generatePrivateKey() {
    // Clamped like `wg genkey` output; the KeyObject is made when the key is first used.
    return clamp(randomFillSync(new Uint8Array(KEY_LEN)));
  },
  publicKey(sk) {
    checkKey(sk, 'private key');
    return fromB64u(createPublicKey(privateKeyObject(sk)).export({ format: 'jwk' }).x!);
  },
  sharedSecret(sk, pk) {
    checkKey(sk, 'private key');
    checkKey(pk, 'public key');
    try {
      const s = diffieHellman({ privateKey: privateKeyObject(sk), publicKey: publicKeyObject(pk) });
      const out = new Uint8Array(s);
      s.fill(0);
      return isZero(out) ? null : out;
    } catch {
      return null; // OpenSSL refuses an all-zero shared secret
    }
  },
};
