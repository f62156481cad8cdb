/**
 * The native BLAKE2s backend: HASH, MAC and HMAC of whitepaper §5.4 in the
 * tunnelbyte addon (native/src/blake2s.cc), OpenSSL's `BLAKE2S-256` digest,
 * `BLAKE2SMAC` (keyed BLAKE2s) and `HMAC` over BLAKE2S-256, on the OpenSSL
 * node itself is built with. One N-API call per value, no allocation on the
 * native side; `macInto` allocates nothing at all. A flooded exit runs mac1
 * on every handshake message and mac2/cookies under load (§5.3), so these are
 * the calls that decide how many initiations per second it can look at.
 *
 * This wrapper owns validation (lengths, part count) and throws a
 * RangeError naming the bad value; the addon checks the same again.
 * `nativeBlake2sFrom(binding)` takes any build with that shape, for tests.
 */
import { HASH_LEN, type Blake2s } from './blake2s.js';
import { loadAddonFunctions, loadOrReason } from './native-addon.js';

/** The addon's BLAKE2s exports (native/README.md). */
export interface NativeBlake2sBinding {
  /** out (32 bytes) = BLAKE2s-256(parts[0] || ...), 1..4 parts. */
  b2sHash(out: Uint8Array, ...parts: Uint8Array[]): void;
  /** out (1..32 bytes) = keyed BLAKE2s(key (1..32 bytes), input) with digest length out.length. */
  b2sMac(out: Uint8Array, key: Uint8Array, input: Uint8Array): void;
  /** out (32 bytes) = HMAC-BLAKE2s(key, parts[0] || ...), 1..4 parts. */
  b2sHmac(out: Uint8Array, key: Uint8Array, ...parts: Uint8Array[]): void;
}

/** The most parts one native call hashes (the Noise steps use at most three). */
export const MAX_NATIVE_PARTS = 4;

export function loadNativeBlake2sBinding(path?: string): NativeBlake2sBinding {
  return loadAddonFunctions<NativeBlake2sBinding>(path, ['b2sHash', 'b2sMac', 'b2sHmac'], 'BLAKE2s');
}

const EMPTY = new Uint8Array(0);

function checkParts(what: string, parts: Uint8Array[]): void {
  if (parts.length > MAX_NATIVE_PARTS) throw new RangeError(`${what}: at most ${MAX_NATIVE_PARTS} parts, got ${parts.length}`);
}

/** A Blake2s over `binding`. */
export function nativeBlake2sFrom(binding: NativeBlake2sBinding, name = 'native'): Blake2s {
  const { b2sHash, b2sMac, b2sHmac } = binding;
  return {
    name,
    hash(...parts) {
      checkParts('hash', parts);
      const out = new Uint8Array(HASH_LEN);
      if (parts.length === 0) b2sHash(out, EMPTY);
      else b2sHash(out, ...parts);
      return out;
    },
    hmac(key, ...parts) {
      checkParts('hmac', parts);
      const out = new Uint8Array(HASH_LEN);
      if (parts.length === 0) b2sHmac(out, key, EMPTY);
      else b2sHmac(out, key, ...parts);
      return out;
    },
    macInto(out, key, input) {
      if (out.length < 1 || out.length > HASH_LEN) throw new RangeError(`mac: output must be 1..${HASH_LEN} bytes, got ${out.length}`);
      if (key.length < 1 || key.length > HASH_LEN) throw new RangeError(`mac: key must be 1..${HASH_LEN} bytes, got ${key.length}`);
      b2sMac(out, key, input);
    },
  };
}

const loaded = loadOrReason(() => nativeBlake2sFrom(loadNativeBlake2sBinding()));

/** This checkout's build; null when the addon cannot be loaded (see nativeBlake2sLoadError). */
export const nativeBlake2s: Blake2s | null = loaded.value;
export const nativeBlake2sLoadError: string | null = loaded.error;
