/**
 * The crypto backend a device uses: one implementation per primitive that
 * has more than one. Chosen by measurement (bench/crypto.ts; README
 * "Benchmarks"): node:crypto for X25519 (≈30× noble here) and, for the
 * transport AEAD, whichever `TB_CRYPTO_AEAD` names (default: node).
 */
import { nobleTransportAead, nodeTransportAead, type TransportAead } from './aead.js';
import { nobleX25519, nodeX25519, type X25519 } from './x25519.js';

export interface CryptoBackend {
  readonly x25519: X25519;
  readonly aead: TransportAead;
}

export const nobleBackend: CryptoBackend = { x25519: nobleX25519, aead: nobleTransportAead };
export const nodeBackend: CryptoBackend = { x25519: nodeX25519, aead: nodeTransportAead };

/** The default backend; `aead` picks the transport AEAD by name ('node' | 'noble'). */
export function defaultBackend(aead: string | undefined = process.env.TB_CRYPTO_AEAD): CryptoBackend {
  if (aead === undefined || aead === '' || aead === 'node') return nodeBackend;
  if (aead === 'noble') return { x25519: nodeX25519, aead: nobleTransportAead };
  throw new RangeError(`unknown AEAD backend '${aead}' (expected node or noble)`);
}
