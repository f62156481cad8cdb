/**
 * Two devices over the in-memory adapters, with a manual clock:
 * A (10.0.0.1, fd00::1) at 192.0.2.1:51820 and B (10.0.0.2, fd00::2) at
 * 192.0.2.2:51820, each the other's peer. (192.0.2.0/24 is TEST-NET-1; these
 * addresses exist only inside the in-memory switch.)
 */
import { ManualClock } from '../../src/protocol/clock.js';
import type { Peer } from '../../src/device/peer.js';
import { DeviceRuntime } from '../../src/device/runtime.js';
import { nodeX25519 } from '../../src/crypto/x25519.js';
import { MemoryNetwork, MemoryTun, type MemoryUdpBind } from '../../src/io/memory.js';
import { encodeEndpoint } from '../../src/io/endpoint.js';
import { parseIPv4, parseIPv6 } from '../../src/io/ip-address.js';
import { PacketBatch } from '../../src/io/batch.js';
import { deliverAndPoison } from '../../src/io/memory.js';
import type { DeviceOptions } from '../../src/device/device.js';

export interface Side {
  rt: DeviceRuntime;
  tun: MemoryTun;
  bind: MemoryUdpBind;
  peer: Peer; // the other side, as this side's peer
  publicKey: Uint8Array;
}

export interface Pair {
  clock: ManualClock;
  net: MemoryNetwork;
  a: Side;
  b: Side;
  close(): void;
}

export function makePair(opts: { psk?: Uint8Array; a?: Partial<DeviceOptions>; b?: Partial<DeviceOptions>; endpoints?: 'both' | 'a-knows-b' } = {}): Pair {
  const clock = new ManualClock();
  const net = new MemoryNetwork();
  const skA = nodeX25519.generatePrivateKey();
  const skB = nodeX25519.generatePrivateKey();
  const pkA = nodeX25519.publicKey(skA);
  const pkB = nodeX25519.publicKey(skB);
  const mk = (sk: Uint8Array, addr: string, extra: Partial<DeviceOptions> | undefined) => {
    const tun = new MemoryTun();
    const bind = net.bind(addr, 51820);
    const rt = new DeviceRuntime({ tun, bind, clock, privateKey: sk, tickIntervalMs: 0, ...extra });
    return { tun, bind, rt };
  };
  const A = mk(skA, '192.0.2.1', opts.a);
  const B = mk(skB, '192.0.2.2', opts.b);
  const peerB = A.rt.device.addPeer(pkB);
  const peerA = B.rt.device.addPeer(pkA);
  A.rt.device.allowedIps.insert(4, parseIPv4('10.0.0.2')!, 32, peerB);
  A.rt.device.allowedIps.insert(6, parseIPv6('fd00::2')!, 128, peerB);
  B.rt.device.allowedIps.insert(4, parseIPv4('10.0.0.1')!, 32, peerA);
  B.rt.device.allowedIps.insert(6, parseIPv6('fd00::1')!, 128, peerA);
  encodeEndpoint({ family: 4, address: '192.0.2.2', port: 51820 }, peerB.endpoint);
  if (opts.endpoints !== 'a-knows-b') encodeEndpoint({ family: 4, address: '192.0.2.1', port: 51820 }, peerA.endpoint);
  if (opts.psk) {
    peerB.setPresharedKey(opts.psk);
    peerA.setPresharedKey(opts.psk);
  }
  return {
    clock,
    net,
    a: { ...A, peer: peerB, publicKey: pkA },
    b: { ...B, peer: peerA, publicKey: pkB },
    close() {
      A.rt.close();
      B.rt.close();
    },
  };
}

/** Lets queued in-memory deliveries run (each hop is one macrotask). */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** Hands one datagram straight to a device's receive path, as if it came from `from`. */
export function deliver(side: Side, bytes: Uint8Array, from: { address: string; port: number }): void {
  const batch = new PacketBatch(1, 2048);
  batch.count = 1;
  batch.offsets[0] = 0;
  batch.lengths[0] = bytes.length;
  batch.data.set(bytes, 0);
  encodeEndpoint({ family: from.address.includes(':') ? 6 : 4, ...from }, batch.endpoints);
  deliverAndPoison(batch, (b) => side.rt.device.receiveFromNetwork(b));
}
