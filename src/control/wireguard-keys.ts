/**
 * WireGuard keys as the tools print them: 32 bytes in standard base64 (44
 * characters with one '='). Key pairs generated here (for sessions created
 * without a client public key) are clamped exactly as `wg genkey` does.
 */
import { randomBytes } from 'node:crypto';
import { x25519 } from '@noble/curves/ed25519.js';

const KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** Is this the base64 text of a 32-byte key (not the all-zero key)? */
export function isWireGuardKey(s: string): boolean {
  return KEY_RE.test(s) && Buffer.from(s, 'base64').some((b) => b !== 0);
}

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

/** A fresh Curve25519 key pair (private key clamped per RFC 7748 §5, like `wg genkey`). */
export function generateKeyPair(): KeyPair {
  const sk = randomBytes(32);
  sk[0]! &= 248;
  sk[31]! &= 127;
  sk[31]! |= 64;
  const pk = x25519.getPublicKey(sk);
  const pair = { privateKey: sk.toString('base64'), publicKey: Buffer.from(pk).toString('base64') };
  sk.fill(0);
  return pair;
}

/** The public key of a base64 private key. */
export function publicKeyOf(privateKey: string): string {
  if (!isWireGuardKey(privateKey)) throw new TypeError('not a WireGuard key (base64 of 32 bytes)');
  return Buffer.from(x25519.getPublicKey(Buffer.from(privateKey, 'base64'))).toString('base64');
}
