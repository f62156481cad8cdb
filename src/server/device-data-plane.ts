/**
 * The control plane's DataPlane over the WireGuard Device of this process:
 * a session's peer is the client's public key with its own addresses as
 * allowed IPs (so cryptokey routing both routes to it and checks its inner
 * source addresses).
 */
import { keyFromBase64 } from '../crypto/wireguard-keys.js';
import type { DataPlane, PeerCounters, PeerSpec } from '../control/services/data-plane.js';
import type { Device } from '../device/device.js';
import { parsePrefix, type Prefix } from '../io/ip-address.js';

/** A public key from its base64 text; misuse (not a key) throws. */
export function decodeKey(b64: string): Uint8Array {
  const k = keyFromBase64(b64);
  if (!k) throw new TypeError(`not a WireGuard public key: ${b64}`);
  return k;
}

/** A peer spec's key and prefixes, checked: what addPeer applies, and what a caller on another thread checks before sending it. */
export function parsePeerSpec(spec: PeerSpec): { key: Uint8Array; prefixes: Prefix[] } {
  const prefixes = spec.allowedIps.map((s) => {
    const p = parsePrefix(s);
    if (!p) throw new TypeError(`not a prefix: ${s}`);
    return p;
  });
  return { key: decodeKey(spec.publicKey), prefixes };
}

export class DeviceDataPlane implements DataPlane {
  constructor(private readonly device: Device) {}

  addPeer(spec: PeerSpec): void {
    const { key, prefixes } = parsePeerSpec(spec);
    const peer = this.device.addPeer(key);
    this.device.allowedIps.removeValue(peer);
    for (const p of prefixes) this.device.allowedIps.insert(p.family, p.address, p.cidr, peer);
  }

  removePeer(publicKey: string): void {
    this.device.removePeer(decodeKey(publicKey));
  }

  readCounters(): Map<string, PeerCounters> {
    const out = new Map<string, PeerCounters>();
    for (const p of this.device.peers()) {
      out.set(p.id, { rxBytes: p.rxBytes, txBytes: p.txBytes, lastHandshakeMs: p.lastHandshakeWallMs > 0 ? p.lastHandshakeWallMs : null });
    }
    return out;
  }
}
