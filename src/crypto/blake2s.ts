/**
 * BLAKE2s (RFC 7693) and the constructions WireGuard builds on it
 * (whitepaper §5.4 "Cryptographic primitives"):
 *
 *   HASH(input)        = BLAKE2s(input, 32)
 *   MAC(key, input)    = Keyed-BLAKE2s(key, input, 16)
 *   HMAC(key, input)   = HMAC-BLAKE2s(key, input, 32)         (RFC 2104, 64-byte block)
 *   KDFn(key, input)   = HKDF-style expansion with HMAC-BLAKE2s (RFC 5869 without salt/info)
 *
 * Backends (`Blake2s`, chosen in backend.ts): @noble/hashes for everything
 * (`nobleBlake2s`, the checked reference); node:crypto (OpenSSL's
 * `blake2s256`) for HASH and HMAC, which it does about 2× and 4× faster than
 * noble here, with MAC on noble because node:crypto cannot reach OpenSSL's
 * keyed BLAKE2s (`nodeBlake2s`); and the addon's, all three in OpenSSL
 * through one N-API call (blake2s-native.ts). The module-level `hash`, `kdf`
 * and `hmacBlake2s` that the Noise steps use are the node:crypto ones;
 * test/property checks every backend against noble.
 */
import { blake2s } from '@noble/hashes/blake2.js';
import { hmac } from '@noble/hashes/hmac.js';
import { createHash, createHmac } from 'node:crypto';

export const HASH_LEN = 32;
export const MAC_LEN = 16;

/** HASH(a || b || ...) with BLAKE2s-256 (noble). */
export function nobleHash(...parts: Uint8Array[]): Uint8Array {
  const h = blake2s.create();
  for (const p of parts) h.update(p);
  return h.digest();
}

/** HASH(a || b || ...) with BLAKE2s-256 (node:crypto). */
export function hash(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('blake2s256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** MAC(key, input): keyed BLAKE2s with a 16-byte output (used for mac1, mac2 and cookies), noble. */
export function mac(key: Uint8Array, input: Uint8Array): Uint8Array {
  return blake2s(input, { key, dkLen: MAC_LEN });
}

/** The BLAKE2s constructions a backend provides (the DoS defences of §5.3 call them per message). */
export interface Blake2s {
  readonly name: string;
  /** HASH(a || b || ...), 32 bytes. */
  hash(...parts: Uint8Array[]): Uint8Array;
  /** HMAC-BLAKE2s(key, a || b || ...), 32 bytes. */
  hmac(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array;
  /** out = Keyed-BLAKE2s(key, input, out.length): MAC when out is 16 bytes; key 1..32 bytes. No allocation. */
  macInto(out: Uint8Array, key: Uint8Array, input: Uint8Array): void;
}

function nobleMacInto(out: Uint8Array, key: Uint8Array, input: Uint8Array): void {
  blake2s.create({ key, dkLen: out.length }).update(input).digestInto(out);
}

export const nobleBlake2s: Blake2s = { name: 'noble', hash: nobleHash, hmac: nobleHmacBlake2s, macInto: nobleMacInto };

/** HMAC-BLAKE2s(key, input), 32 bytes (noble). */
export function nobleHmacBlake2s(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = hmac.create(blake2s, key);
  for (const p of parts) h.update(p);
  return h.digest();
}

/** HMAC-BLAKE2s(key, input), 32 bytes (node:crypto). */
export function hmacBlake2s(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('blake2s256', key);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

export const nodeBlake2s: Blake2s = { name: 'node', hash, hmac: hmacBlake2s, macInto: nobleMacInto };

const ONE = Uint8Array.of(1);
const TWO = Uint8Array.of(2);
const THREE = Uint8Array.of(3);

/**
 * KDFn(key, input), n = 1..3 (whitepaper §5.4):
 *   τ0 = HMAC(key, input); τ1 = HMAC(τ0, 0x1); τi = HMAC(τ0, τ(i-1) || i)
 * The pseudorandom key τ0 is zeroed before returning.
 */
export function kdf(n: 1, key: Uint8Array, input: Uint8Array): [Uint8Array];
export function kdf(n: 2, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array];
export function kdf(n: 3, key: Uint8Array, input: Uint8Array): [Uint8Array, Uint8Array, Uint8Array];
export function kdf(n: 1 | 2 | 3, key: Uint8Array, input: Uint8Array): Uint8Array[] {
  const prk = hmacBlake2s(key, input);
  const t1 = hmacBlake2s(prk, ONE);
  const out = [t1];
  if (n >= 2) out.push(hmacBlake2s(prk, t1, TWO));
  if (n >= 3) out.push(hmacBlake2s(prk, out[1]!, THREE));
  prk.fill(0);
  return out;
}
