/**
 * The crypto backend a device uses: one implementation per primitive that
 * has more than one. Chosen by measurement (bench/in-process.ts; README
 * "Benchmarks"): node:crypto for X25519 (≈30× noble here) and, for the
 * transport AEAD, whichever `TB_CRYPTO_AEAD` names — by default the native
 * addon's (OpenSSL EVP, in place, no allocation) when it is built, else
 * node:crypto's.
 *
 * Transport AEAD, µs per packet (seal / open) on this shared 2-vCPU machine,
 * node 20.20.2 with OpenSSL 3.0.19, two runs of `npm run bench` (2026-11-28):
 *
 *   bytes   native (addon, EVP)   node (createCipheriv)   noble (composed)
 *      64     1.0 / 1.1               9–12 / 9–11             8–11 / 9–10
 *     512     0.9–1.2 / 0.9–1.4       10–13 / 8–13            19–21 / 22
 *    1420     1.7–2.1 / 1.8–2.3       9–12 / 9–11             23–35 / 27–33
 *
 * Through the device (bench "encrypt+decrypt", packets/s, 64/512/1420 B):
 * native 380k–440k / 310k–370k / 190k–260k; node 49k–57k / 36k–43k / 38k–42k;
 * noble 34k / 24k / 14k–15k. node:crypto's time hardly depends on the size:
 * it is the per-call cost (a cipher object and buffers per packet), not the
 * cipher, which is the same OpenSSL code the native backend calls.
 *
 * The handshake's BLAKE2s MAC and the cookie's XChaCha20-Poly1305 (`blake2s`,
 * `xaead`, used by protocol/cookie.ts for mac1, mac2 and cookie replies) are
 * the addon's whenever it loads, whatever TB_CRYPTO_AEAD says: a flooded exit
 * runs them on every handshake message it receives (whitepaper §5.3).
 * µs per call here, native / noble (scratch run, load ≈ 4): MAC of a
 * 116-byte initiation 1.2–2.7 / 16–17, cookie seal 4–5 / 29–66. The noble
 * backend keeps noble for both, as the reference the others are checked
 * against (test/property/blake2s-backends.test.ts, xaead-backends.test.ts).
 */
import { nobleTransportAead, nodeTransportAead, type TransportAead } from './aead.js';
import { nativeAeadLoadError, nativeTransportAead } from './aead-native.js';
import { nobleBlake2s, nodeBlake2s, type Blake2s } from './blake2s.js';
import { nativeBlake2s } from './blake2s-native.js';
import { nobleX25519, nodeX25519, type X25519 } from './x25519.js';
import { nobleXaead, type XAead } from './xaead.js';
import { nativeXaead } from './xaead-native.js';

export interface CryptoBackend {
  readonly x25519: X25519;
  readonly aead: TransportAead;
  /** MAC (mac1, mac2, cookies), HASH and HMAC. */
  readonly blake2s: Blake2s;
  /** The cookie reply's XChaCha20-Poly1305. */
  readonly xaead: XAead;
}

/** The handshake MACs and cookie cipher every non-reference backend uses: the addon's when it loads. */
const handshakeMacs = { blake2s: nativeBlake2s ?? nodeBlake2s, xaead: nativeXaead ?? nobleXaead };

export const nobleBackend: CryptoBackend = { x25519: nobleX25519, aead: nobleTransportAead, blake2s: nobleBlake2s, xaead: nobleXaead };
export const nodeBackend: CryptoBackend = { x25519: nodeX25519, aead: nodeTransportAead, ...handshakeMacs };
/** node:crypto X25519 with the native transport AEAD, BLAKE2s and XChaCha; null when the addon is not built. */
export const nativeBackend: CryptoBackend | null =
  nativeTransportAead && nativeBlake2s && nativeXaead && { x25519: nodeX25519, aead: nativeTransportAead, blake2s: nativeBlake2s, xaead: nativeXaead };

/**
 * The default backend; `aead` picks the transport AEAD by name ('native' |
 * 'node' | 'noble'). Unset: native when the addon loads, else node.
 */
export function defaultBackend(aead: string | undefined = process.env.TB_CRYPTO_AEAD): CryptoBackend {
  if (aead === undefined || aead === '') return nativeBackend ?? nodeBackend;
  if (aead === 'native') {
    if (nativeBackend === null) throw new Error(`TB_CRYPTO_AEAD=native, but the native AEAD is unavailable: ${nativeAeadLoadError}`);
    return nativeBackend;
  }
  if (aead === 'node') return nodeBackend;
  if (aead === 'noble') return { x25519: nodeX25519, aead: nobleTransportAead, ...handshakeMacs };
  throw new RangeError(`unknown AEAD backend '${aead}' (expected native, node or noble)`);
}
