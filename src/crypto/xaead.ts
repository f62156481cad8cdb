/**
 * XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha), used only for the cookie in
 * the cookie reply message (whitepaper §5.4.7): a 24-byte random nonce,
 * the mac1 of the message being answered as associated data.
 *
 * Backends (`XAead`, chosen in backend.ts): noble's (`nobleXaead`, the checked
 * reference) and the addon's (xaead-native.ts: HChaCha20 in C, then OpenSSL's
 * ChaCha20-Poly1305).
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';

export const XNONCE_LEN = 24;
export const XKEY_LEN = 32;

export interface XAead {
  readonly name: string;
  /** ciphertext || 16-byte tag. */
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  /** The plaintext; null when authentication fails. */
  open(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array | null;
}

export function xaeadSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  return xchacha20poly1305(key, nonce, aad).encrypt(plaintext);
}

/** null when authentication fails. */
export function xaeadOpen(key: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array, aad: Uint8Array): Uint8Array | null {
  try {
    return xchacha20poly1305(key, nonce, aad).decrypt(ciphertext);
  } catch {
    return null;
  }
}

export const nobleXaead: XAead = { name: 'noble', seal: xaeadSeal, open: xaeadOpen };
