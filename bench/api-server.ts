/**
 * Child process of the API benchmark: the /v1 app over a real SQLite file in
 * a temp dir, one registered node with a data plane that only keeps counters,
 * on an ephemeral loopback port. Prints `{"url": ...}` once listening; exits
 * (removing the temp dir) when its stdin closes. A process of its own so that
 * the load generator and the server each get a core, as in production.
 *
 * Per-token limits are lifted: the benchmark measures the API's work, not
 * the limiter answering 429.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlConfig } from '../src/control/config.js';
import { createControlPlane } from '../src/control/control-plane.js';
import { createApp } from '../src/control/http/app.js';
import { createMetrics } from '../src/control/http/metrics.js';
import type { DataPlane, PeerCounters } from '../src/control/services/data-plane.js';
import { generateKeyPair } from '../src/crypto/wireguard-keys.js';

class CountersOnlyDataPlane implements DataPlane {
  private readonly counters = new Map<string, PeerCounters>();
  addPeer(p: { publicKey: string }): void {
    this.counters.set(p.publicKey, { rxBytes: 0, txBytes: 0, lastHandshakeMs: null });
  }
  removePeer(publicKey: string): void {
    this.counters.delete(publicKey);
  }
  readCounters(): Map<string, PeerCounters> {
    return new Map(this.counters);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'tb-bench-api-'));
const unlimited = { requestsPerMinute: 1e9 };
const control = createControlPlane({
  dbPath: join(dir, 'tunnelbyte.db'),
  config: controlConfig({ publicRateLimit: { burst: 1e9, perSecond: 1e9 }, tiers: { anonymous: unlimited, paid: unlimited } }),
});
const { node } = control.nodes.register({
  regionId: 'local',
  publicKey: generateKeyPair().publicKey,
  endpoint: '192.0.2.1:51820',
  exitAddresses: ['192.0.2.1'],
  pool4: '10.64.0.0/16',
  pool6: 'fd00:64::/64',
});
control.attachDataPlane(node.id, new CountersOnlyDataPlane(), ['192.0.2.1']).sync();
const server = createServer(createApp({ control, metrics: createMetrics(control, { defaultMetrics: false }) }).callback());
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }) + '\n');
});
process.stdin.resume();
process.stdin.on('close', () => {
  server.closeAllConnections();
  server.close();
  control.close();
  rmSync(dir, { recursive: true, force: true });
  process.exit(0);
});
