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
 */
import { nobleTransportAead, nodeTransportAead, type TransportAead } from './aead.js';
import { nativeAeadLoadError, nativeTransportAead } from './aead-native.js';
import { nobleX25519, nodeX25519, type X25519 } from './x25519.js';

export interface CryptoBackend {
  readonly x25519: X25519;
  readonly aead: TransportAead;
}

export const nobleBackend: CryptoBackend = { x25519: nobleX25519, aead: nobleTransportAead };
export const nodeBackend: CryptoBackend = { x25519: nodeX25519, aead: nodeTransportAead };
/** node:crypto X25519 with the native transport AEAD; null when the addon is not built. */
export const nativeBackend: CryptoBackend | null = nativeTransportAead && { x25519: nodeX25519, aead: nativeTransportAead };

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
  if (aead === 'noble') return { x25519: nodeX25519, aead: nobleTransportAead };
  throw new RangeError(`unknown AEAD backend '${aead}' (expected native, node or noble)`);
}
