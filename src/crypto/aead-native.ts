/**
 * The native transport AEAD: ChaCha20-Poly1305 (RFC 8439 §2.8) in the
 * tunnelbyte addon (native/src/aead.cc), on the OpenSSL node itself is built
 * with (EVP_chacha20_poly1305). One N-API call per packet, which seals or
 * opens the packet in place in the caller's buffer; nothing is allocated on
 * either side (the counter goes over as a number, one cipher context per
 * thread is reused). `open` verifies before it writes, so a packet that fails
 * is left untouched, as the `TransportAead` contract asks.
 *
 * This wrapper owns validation: it checks the region, key length and counter
 * and throws a RangeError naming the bad value; the addon checks the same
 * bounds again (cheaply) so no call can reach memory outside the buffer.
 * `nativeAeadFrom(binding)` takes any build with that shape, for tests.
 */
import { AEAD_KEY_LEN, TAG_LEN, type TransportAead } from './aead.js';
import { loadAddonFunctions, loadOrReason } from './native-addon.js';

/** The addon's AEAD exports (native/README.md). */
export interface NativeAeadBinding {
  /** Encrypts buf[at, at+len) in place; writes the tag at buf[at+len, at+len+16). */
  aeadSeal(key: Uint8Array, counter: number, buf: Uint8Array, at: number, len: number): void;
  /** Opens buf[at, at+len) (len includes the tag) in place; false, with buf untouched, when the tag fails. */
  aeadOpen(key: Uint8Array, counter: number, buf: Uint8Array, at: number, len: number): boolean;
}

/** Loads the AEAD part of the addon at `path`; throws, saying why, when it cannot. */
export function loadNativeAeadBinding(path?: string): NativeAeadBinding {
  return loadAddonFunctions<NativeAeadBinding>(path, ['aeadSeal', 'aeadOpen'], 'ChaCha20-Poly1305');
}

function misuse(what: string, key: Uint8Array, counter: number, buf: Uint8Array, at: number, len: number, extra: number): RangeError {
  if (key.length !== AEAD_KEY_LEN) return new RangeError(`${what}: key must be ${AEAD_KEY_LEN} bytes, got ${key.length}`);
  if (!Number.isSafeInteger(counter) || counter < 0) return new RangeError(`${what}: counter must be an integer in [0, 2^53), got ${counter}`);
  const tail = extra > 0 ? ` plus a ${extra}-byte tag` : '';
  return new RangeError(`${what}: region at ${at} of length ${len}${tail} is outside a buffer of ${buf.length} bytes`);
}

/** A TransportAead over `binding`'s aeadSeal/aeadOpen. */
export function nativeAeadFrom(binding: NativeAeadBinding, name = 'native'): TransportAead {
  const { aeadSeal, aeadOpen } = binding;
  return {
    name,
    seal(key, counter, buf, at, len) {
      if (
        key.length !== AEAD_KEY_LEN ||
        !Number.isSafeInteger(counter) ||
        counter < 0 ||
        !Number.isInteger(at) ||
        !Number.isInteger(len) ||
        at < 0 ||
        len < 0 ||
        at + len + TAG_LEN > buf.length
      ) {
        throw misuse('seal', key, counter, buf, at, len, TAG_LEN);
      }
      aeadSeal(key, counter, buf, at, len);
    },
    open(key, counter, buf, at, len) {
      if (
        key.length !== AEAD_KEY_LEN ||
        !Number.isSafeInteger(counter) ||
        counter < 0 ||
        !Number.isInteger(at) ||
        !Number.isInteger(len) ||
        at < 0 ||
        len < 0 ||
        at + len > buf.length
      ) {
        throw misuse('open', key, counter, buf, at, len, 0);
      }
      if (len < TAG_LEN) return false;
      return aeadOpen(key, counter, buf, at, len);
    },
  };
}

const loaded = loadOrReason(() => nativeAeadFrom(loadNativeAeadBinding()));

/** The native backend of this checkout's build; null when the addon cannot be loaded (see nativeAeadLoadError). */
export const nativeTransportAead: TransportAead | null = loaded.value;

/** Why `nativeTransportAead` is null; null when it loaded. */
export const nativeAeadLoadError: string | null = loaded.error;
