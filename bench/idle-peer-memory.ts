/**
 * Child process of the idle-peer memory benchmark (run with --expose-gc):
 * a Device with N peers, each with a /32 allowed IP and its precomputed
 * static-static DH, no handshake. Prints {"bytesPerPeer", "rssBytesPerPeer"}.
 * The keys are made before the first reading, so only what the device keeps
 * per peer is counted.
 */
import { Device } from '../src/device/device.js';
import { ManualClock } from '../src/protocol/clock.js';
import { defaultBackend } from '../src/crypto/backend.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

function used(): { js: number; rss: number } {
  for (let i = 0; i < 4; i++) gc!();
  const m = process.memoryUsage();
  return { js: m.heapUsed + m.external, rss: m.rss };
}

const n = Number(process.argv[2] ?? 10_000);
const crypto = defaultBackend();
const dev = new Device({ clock: new ManualClock(), crypto, privateKey: crypto.x25519.generatePrivateKey(), sendToNetwork: () => {}, writeToTun: () => {} });
const keys = Array.from({ length: n }, () => crypto.x25519.publicKey(crypto.x25519.generatePrivateKey()));
const addresses = Array.from({ length: n }, (_, i) => Uint8Array.of(10, 64 + (i >> 16), (i >> 8) & 0xff, i & 0xff));
const before = used();
for (let i = 0; i < n; i++) dev.allowedIps.insert(4, addresses[i]!, 32, dev.addPeer(keys[i]!));
const after = used();
if (dev.peerCount !== n) throw new Error(`expected ${n} peers`);
process.stdout.write(JSON.stringify({ bytesPerPeer: (after.js - before.js) / n, rssBytesPerPeer: (after.rss - before.rss) / n }) + '\n');
