/**
 * In-process benchmarks (no root, no sockets): the protocol core through the
 * Device API with a manual clock, the crypto backends, the routing table.
 * Each function returns rows for the report; `scale` shrinks the work for
 * the smoke run inside `npm test`.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Device } from '../src/device/device.js';
import { ManualClock } from '../src/protocol/clock.js';
import { PacketBatch } from '../src/io/batch.js';
import { encodeEndpoint } from '../src/io/endpoint.js';
import { parseIPv4 } from '../src/io/ip-address.js';
import { nobleTransportAead, nodeTransportAead, type TransportAead } from '../src/crypto/aead.js';
import { nobleX25519, nodeX25519, type X25519 } from '../src/crypto/x25519.js';
import { nativeTransportAead } from '../src/crypto/aead-native.js';
import { defaultBackend, type CryptoBackend } from '../src/crypto/backend.js';
import { AllowedIps } from '../src/protocol/allowed-ips.js';
import { Initiation } from '../src/protocol/messages.js';

export interface Row {
  name: string;
  value: number;
  unit: string;
  note?: string;
}

function timeIt(minMs: number, fn: () => number): { ops: number; ms: number } {
  let ops = 0;
  const t0 = performance.now();
  let t = t0;
  while (t - t0 < minMs) {
    ops += fn();
    t = performance.now();
  }
  return { ops, ms: t - t0 };
}

export function benchX25519(scale: number): Row[] {
  const rows: Row[] = [];
  for (const x of [nobleX25519, nodeX25519] as X25519[]) {
    const a = x.generatePrivateKey();
    const pb = x.publicKey(x.generatePrivateKey());
    x.sharedSecret(a, pb);
    const { ops, ms } = timeIt(300 * scale, () => {
      x.sharedSecret(a, pb);
      return 1;
    });
    rows.push({ name: `x25519 DH (${x.name})`, value: (ops / ms) * 1000, unit: 'ops/s' });
  }
  return rows;
}

/** The transport AEAD backends (native only when the addon is built). */
function aeads(): TransportAead[] {
  return [nobleTransportAead, nodeTransportAead, ...(nativeTransportAead ? [nativeTransportAead] : [])];
}

export function benchAead(scale: number): Row[] {
  const rows: Row[] = [];
  const key = new Uint8Array(32).fill(1);
  for (const size of [64, 512, 1420]) {
    const buf = new Uint8Array(size + 16);
    const sealed = new Uint8Array(size + 16);
    for (const aead of aeads()) {
      let c = 0;
      for (let i = 0; i < 200; i++) aead.seal(key, c++, buf, 0, size);
      const s = timeIt(300 * scale, () => {
        for (let i = 0; i < 20; i++) aead.seal(key, c++, buf, 0, size);
        return 20;
      });
      rows.push({ name: `AEAD seal ${size} B (${aead.name})`, value: (s.ms * 1000) / s.ops, unit: 'µs/packet' });
      aead.seal(key, c, sealed, 0, size);
      const o = timeIt(300 * scale, () => {
        for (let i = 0; i < 20; i++) {
          buf.set(sealed);
          if (!aead.open(key, c, buf, 0, size + 16)) throw new Error(`${aead.name}: bench packet did not open`);
        }
        return 20;
      });
      rows.push({ name: `AEAD open ${size} B (${aead.name})`, value: (o.ms * 1000) / o.ops, unit: 'µs/packet', note: 'with a copy of the sealed packet' });
    }
  }
  return rows;
}

interface Wired {
  clock: ManualClock;
  a: Device;
  b: Device;
  toB: PacketBatch | null;
  delivered: number;
}

/** Two devices whose sinks hand batches straight to each other (no event loop in between). */
function wiredPair(crypto: CryptoBackend): Wired {
  const clock = new ManualClock();
  const w: Wired = { clock, a: null!, b: null!, toB: null, delivered: 0 };
  const epA = new Uint8Array(20);
  const epB = new Uint8Array(20);
  encodeEndpoint({ family: 4, address: '192.0.2.1', port: 1 }, epA);
  encodeEndpoint({ family: 4, address: '192.0.2.2', port: 2 }, epB);
  const relay = (from: Uint8Array, to: () => Device) => (batch: PacketBatch) => {
    for (let i = 0; i < batch.count; i++) batch.endpoints.set(from, i * 20);
    to().receiveFromNetwork(batch);
  };
  w.a = new Device({ clock, crypto, privateKey: crypto.x25519.generatePrivateKey(), sendToNetwork: relay(epA, () => w.b), writeToTun: () => {} });
  w.b = new Device({
    clock,
    crypto,
    privateKey: crypto.x25519.generatePrivateKey(),
    sendToNetwork: relay(epB, () => w.a),
    writeToTun: (batch) => {
      w.delivered += batch.count;
    },
  });
  const pa = w.a.addPeer(w.b.publicKey()!);
  const pb = w.b.addPeer(w.a.publicKey()!);
  w.a.allowedIps.insert(4, parseIPv4('10.0.0.2')!, 32, pa);
  w.b.allowedIps.insert(4, parseIPv4('10.0.0.1')!, 32, pb);
  pa.endpoint.set(epB);
  pb.endpoint.set(epA);
  w.a.sendKeepalive(pa); // handshake + confirming keepalive, synchronously
  return w;
}

function fillBatch(batch: PacketBatch, size: number): void {
  for (let i = 0; i < batch.capacity; i++) {
    const at = i * batch.slotSize + 16;
    const d = batch.data;
    d[at] = 0x45;
    d[at + 2] = size >>> 8;
    d[at + 3] = size & 0xff;
    d[at + 9] = 17;
    d.set([10, 0, 0, 1], at + 12);
    d.set([10, 0, 0, 2], at + 16);
    batch.offsets[i] = 16;
    batch.lengths[i] = size;
  }
  batch.count = batch.capacity;
}

export function benchDataPath(scale: number, crypto: CryptoBackend = defaultBackend()): Row[] {
  const rows: Row[] = [];
  for (const size of [64, 512, 1420]) {
    const w = wiredPair(crypto);
    const batch = new PacketBatch(64, 2048);
    fillBatch(batch, size);
    w.a.receiveFromTun(batch);
    if (w.delivered !== 64) throw new Error(`bench wiring broken: ${w.delivered} delivered`);
    w.delivered = 0;
    const { ms } = timeIt(500 * scale, () => {
      fillBatch(batch, size);
      w.a.receiveFromTun(batch);
      return 64;
    });
    const pps = (w.delivered / ms) * 1000;
    rows.push({ name: `encrypt+decrypt ${size} B (${crypto.aead.name} AEAD)`, value: pps, unit: 'packets/s', note: `${((pps * size * 8) / 1e9).toFixed(3)} Gbit/s` });
  }
  return rows;
}

export function benchHandshakes(scale: number): Row[] {
  const crypto = defaultBackend();
  const iClock = new ManualClock();
  const rClock = new ManualClock();
  const msgs: Uint8Array[] = [];
  const initiator = new Device({
    clock: iClock,
    crypto,
    privateKey: crypto.x25519.generatePrivateKey(),
    sendToNetwork: (b) => {
      for (let i = 0; i < b.count; i++) if (b.lengths[i] === Initiation.SIZE) msgs.push(new Uint8Array(b.packet(i)));
    },
    writeToTun: () => {},
  });
  const responder = new Device({ clock: rClock, crypto, privateKey: crypto.x25519.generatePrivateKey(), sendToNetwork: () => {}, writeToTun: () => {}, underLoad: 'never' });
  const peer = initiator.addPeer(responder.publicKey()!);
  responder.addPeer(initiator.publicKey()!);
  encodeEndpoint({ family: 4, address: '192.0.2.2', port: 2 }, peer.endpoint);
  const n = Math.max(20, Math.round(600 * scale));
  for (let i = 0; i < n; i++) {
    iClock.advance(5_001); // one initiation per REKEY_TIMEOUT; timestamps increase
    initiator.sendKeepalive(peer); // no session: the keepalive waits and an initiation goes out
  }
  const batch = new PacketBatch(1, 256);
  encodeEndpoint({ family: 4, address: '192.0.2.1', port: 1 }, batch.endpoints);
  const t0 = performance.now();
  for (const m of msgs) {
    rClock.advance(25); // past the 50/s initiation flood limit
    batch.count = 1;
    batch.offsets[0] = 0;
    batch.lengths[0] = m.length;
    batch.data.set(m, 0);
    responder.receiveFromNetwork(batch);
  }
  const ms = performance.now() - t0;
  const failed = Object.values(responder.drops).reduce((x, y) => x + y, 0);
  if (failed) throw new Error(`bench handshakes dropped: ${JSON.stringify(responder.drops)}`);
  return [{ name: 'responder handshakes (one core)', value: (msgs.length / ms) * 1000, unit: 'handshakes/s' }];
}

export function benchAllowedIps(scale: number): Row[] {
  const t = new AllowedIps<{ i: number }>();
  const peers = 10_000;
  for (let i = 0; i < peers; i++) t.insert(4, Uint8Array.of(10, 64 + (i >> 16), (i >> 8) & 0xff, i & 0xff), 32, { i });
  const probe = new Uint8Array(4 * 1024);
  for (let j = 0; j < 1024; j++) probe.set([10, 64, (j * 7) & 0x27, (j * 13) & 0xff], j * 4);
  let hits = 0;
  const { ops, ms } = timeIt(300 * scale, () => {
    for (let j = 0; j < 1024; j++) if (t.lookup4(probe, j * 4)) hits++;
    return 1024;
  });
  return [{ name: 'allowed-IPs lookups, 10,000 peers', value: (ops / ms) * 1000, unit: 'lookups/s', note: hits > 0 ? undefined : 'no hits?' }];
}

/**
 * Memory per idle peer, measured in a fresh process (bench/idle-peer-memory.ts)
 * with --expose-gc: in this one, the garbage and array buffers of the
 * benchmarks before it are freed at unpredictable times and swamp the figure.
 */
export function benchIdlePeerMemory(scale: number): Row[] {
  const n = Math.max(1000, Math.round(10_000 * scale));
  const script = fileURLToPath(new URL('./idle-peer-memory.js', import.meta.url));
  const out = execFileSync(process.execPath, ['--expose-gc', script, String(n)], { encoding: 'utf8' });
  const { bytesPerPeer, rssBytesPerPeer } = JSON.parse(out) as { bytesPerPeer: number; rssBytesPerPeer: number };
  return [{ name: `memory per idle peer (${n} peers)`, value: bytesPerPeer, unit: 'bytes', note: `JS heap + external after full GCs; RSS grew ${Math.round(rssBytesPerPeer)} B/peer` }];
}
