/**
 * WireGuard keys as text, once for the program: 32 bytes in standard base64
 * (44 characters with one '='), as `wg genkey`, `wg pubkey` and wg-quick
 * configurations write them, and as lowercase hex, as the UAPI
 * (wireguard.com/xplatform) writes them. Key pairs generated here come from
 * this layer's X25519 (clamped per RFC 7748 §5, like `wg genkey`).
 */
import { nodeX25519 } from './x25519.js';

/** 42 base64 characters, then one whose low two bits are zero (32 bytes use 256 of the 258 bits), then '='. */
const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const HEX_RE = /^[0-9a-f]{64}$/i;

export function keyToBase64(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.length).toString('base64');
}

/** The 32 bytes of a key's canonical base64 text; null for anything else. */
export function keyFromBase64(s: string): Uint8Array | null {
  return KEY_RE.test(s) ? new Uint8Array(Buffer.from(s, 'base64')) : null;
}

/** Is this the base64 text of a 32-byte key (not the all-zero key)? */
export function isWireGuardKey(s: string): boolean {
  const k = keyFromBase64(s);
  return k !== null && k.some((b) => b !== 0);
}

export function keyToHex(k: Uint8Array): string {
  return Buffer.from(k.buffer, k.byteOffset, k.length).toString('hex');
}

/** The 32 bytes of a key's hex text (64 digits, either case); null for anything else. */
export function keyFromHex(s: string): Uint8Array | null {
  return HEX_RE.test(s) ? new Uint8Array(Buffer.from(s, 'hex')) : null;
}

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

/** A fresh Curve25519 key pair in base64 (the private key clamped, like `wg genkey`). */
export function generateKeyPair(): KeyPair {
  const sk = nodeX25519.generatePrivateKey();
  const pair = { privateKey: keyToBase64(sk), publicKey: keyToBase64(nodeX25519.publicKey(sk)) };
  sk.fill(0);
  return pair;
}

/** The public key of a base64 private key. */
export function publicKeyOf(privateKey: string): string {
  const sk = isWireGuardKey(privateKey) ? keyFromBase64(privateKey) : null;
  if (!sk) throw new TypeError('not a WireGuard key (base64 of 32 bytes)');
  const pk = keyToBase64(nodeX25519.publicKey(sk));
  sk.fill(0);
  return pk;
}
