/**
 * The native XChaCha20-Poly1305 (native/src/xaead.cc): HChaCha20 written out
 * in C from draft-irtf-cfrg-xchacha-03 §2.2, then OpenSSL's
 * EVP_chacha20_poly1305 with the derived subkey (§2.3). An exit under a
 * handshake flood seals one cookie per initiation it cannot accept yet
 * (whitepaper §5.3), so this is on the flooded path.
 *
 * The wrapper checks key and nonce lengths and throws a RangeError naming the
 * bad value; the addon checks them again. `nativeXaeadFrom(binding)` takes
 * any build with that shape, for tests.
 */
import { TAG_LEN } from './aead.js';
import { loadAddonFunctions, loadOrReason } from './native-addon.js';
import { XKEY_LEN, XNONCE_LEN, type XAead } from './xaead.js';

/** The addon's XChaCha20-Poly1305 exports (native/README.md). */
export interface NativeXaeadBinding {
  /** out (input.length + 16 bytes) = ciphertext || tag. */
  xaeadSeal(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, input: Uint8Array, out: Uint8Array): void;
  /** out (input.length - 16 bytes) = plaintext; false, with out zeroed, when the tag fails. */
  xaeadOpen(key: Uint8Array, nonce: Uint8Array, aad: Uint8Array, input: Uint8Array, out: Uint8Array): boolean;
}

export function loadNativeXaeadBinding(path?: string): NativeXaeadBinding {
  return loadAddonFunctions<NativeXaeadBinding>(path, ['xaeadSeal', 'xaeadOpen'], 'ChaCha20-Poly1305');
}

function check(what: string, key: Uint8Array, nonce: Uint8Array): void {
  if (key.length !== XKEY_LEN) throw new RangeError(`${what}: key must be ${XKEY_LEN} bytes, got ${key.length}`);
  if (nonce.length !== XNONCE_LEN) throw new RangeError(`${what}: nonce must be ${XNONCE_LEN} bytes, got ${nonce.length}`);
}

/** An XAead over `binding`. */
export function nativeXaeadFrom(binding: NativeXaeadBinding, name = 'native'): XAead {
  const { xaeadSeal, xaeadOpen } = binding;
  return {
    name,
    seal(key, nonce, plaintext, aad) {
      check('seal', key, nonce);
      const out = new Uint8Array(plaintext.length + TAG_LEN);
      xaeadSeal(key, nonce, aad, plaintext, out);
      return out;
    },
    open(key, nonce, ciphertext, aad) {
      check('open', key, nonce);
      if (ciphertext.length < TAG_LEN) return null;
      const out = new Uint8Array(ciphertext.length - TAG_LEN);
      return xaeadOpen(key, nonce, aad, ciphertext, out) ? out : null;
    },
  };
}

const loaded = loadOrReason(() => nativeXaeadFrom(loadNativeXaeadBinding()));

/** This checkout's build; null when the addon cannot be loaded (see nativeXaeadLoadError). */
export const nativeXaead: XAead | null = loaded.value;
export const nativeXaeadLoadError: string | null = loaded.error;
