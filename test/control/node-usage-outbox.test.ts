/**
 * A joined node's usage path end to end over real HTTP and two real SQLite
 * files (the control plane's and the node's): device counters → the node's
 * cumulative session counters on disk → usage reports with a sequence
 * number → the control plane's session and account totals. A relay between
 * them loses answers on demand and the control plane is restarted on its
 * file, so the tests see exactly what a retry, a lost acknowledgement, a
 * node restart and a control-plane restart do to the totals: nothing is
 * counted twice and nothing is lost.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { Actor } from '../../src/control/services/audit.js';
import { generateKeyPair } from '../../src/crypto/wireguard-keys.js';
import { ControlLink, ControlRefusal, ControlUnreachable, CredentialRefused } from '../../src/server/control-link.js';
import { createApp } from '../../src/control/http/app.js';
import { JoinedAgent } from '../../src/server/joined-agent.js';
import { NodeChannelClient } from '../../src/server/node-channel-client.js';
import { readNodeCredential, writeNodeCredential } from '../../src/server/node-credential.js';
import { openNodeStore, type NodeStore } from '../../src/server/node-store.js';
import { UsageReporter } from '../../src/server/usage-reporter.js';
import { RecordingDataPlane, startHarness, type Harness } from './harness.js';

const OPERATOR: Actor = { actor: 'admin:test', source: null };
const quiet = pino({ level: 'silent' });
/** The anonymous tier's monthly data in this test: the first tests stay below it, the quota test crosses it. */
const QUOTA = 10_000;

/**
 * A TCP relay to the control plane's current port: `dropAnswers` forwards
 * requests but closes the client's connection when the answer starts, as a
 * network that loses the acknowledgement does; `target` follows a restart.
 */
class Relay {
  target = 0;
  dropAnswers = false;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;
  constructor() {
    this.server = createServer((client) => {
      this.sockets.add(client);
      client.on('close', () => this.sockets.delete(client));
      const upstream = connect(this.target, '127.0.0.1');
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.pipe(upstream);
      upstream.on('data', (chunk: Buffer) => {
        if (this.dropAnswers) {
          client.destroy();
          upstream.destroy();
        } else client.write(chunk);
      });
      upstream.on('end', () => client.end());
    });
  }
  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }
  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}

describe('a joined node reports usage: disk outbox, sequence numbers, retries', () => {
  let dir: string;
  let h: Harness;
  let relay: Relay;
  let nodeDir: string;
  let store: NodeStore;
  let node: { id: string; credential: string };
  const device = new RecordingDataPlane();
  let agent: JoinedAgent;
  let reporter: UsageReporter;
  let session: { id: string; clientKey: string; account: { token: string; fingerprint: string; accountId: string } };
  const portOf = (url: string) => Number(new URL(url).port);

  const startControl = async () => {
    h = await startHarness({ node: false, dir, config: { tiers: { anonymous: { quotaBytes: QUOTA } } } });
    relay.target = portOf(h.url);
  };
  const openNode = () => {
    store = openNodeStore(join(nodeDir, 'node.db'));
    agent = new JoinedAgent(store, device, () => h.clock.wallMs(), quiet);
    const link = new ControlLink({ base: `http://127.0.0.1:${relay.port}`, timeoutMs: 5000 });
    reporter = new UsageReporter(store, link, node, () => h.clock.wallMs());
  };
  const controlTotals = async () => {
    const s = await h.request('GET', `/v1/sessions/${session.id}`, { token: session.account.token, fingerprint: session.account.fingerprint });
    assert.equal(s.status, 200, s.text);
    return { rx: s.json.rx_bytes as number, tx: s.json.tx_bytes as number };
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tb-outbox-control-'));
    nodeDir = mkdtempSync(join(tmpdir(), 'tb-outbox-node-'));
    relay = new Relay();
    await relay.listen();
    await startControl();
    const token = h.control.nodeEnrollment.issueToken('edge', 3600_000, OPERATOR).token;
    const link = new ControlLink({ base: `${h.url}/v1` });
    const e = await link.enroll(token, { public_key: generateKeyPair().publicKey, endpoint: 'edge.example.test:51820', exit_addresses: ['203.0.113.9'], pool4: '10.90.0.0/16' });
    node = { id: e.node.id, credential: e.credential };
    await link.heartbeat(node.id, node.credential, ['203.0.113.9']);
    const account = await h.signup();
    const clientKey = generateKeyPair().publicKey;
    const s = await h.request('POST', '/v1/sessions', { token: account.token, fingerprint: account.fingerprint, body: { region: 'edge', public_key: clientKey } });
    assert.equal(s.status, 201, s.text);
    assert.equal(s.json.node, node.id);
    session = { id: s.json.id, clientKey, account };
    openNode();
    // The peer set comes from the control plane's channel, as in serve --join.
    const snap = await new NodeChannelClient({ url: h.url, nodeId: node.id, credential: node.credential }).fetchSnapshot();
    agent.applySnapshot(snap.revision, snap.peers);
    assert.deepEqual(agent.installedPeers(), [clientKey]);
  });
  after(async () => {
    store.close();
    relay.close();
    await h.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(nodeDir, { recursive: true, force: true });
  });

  it('counts device deltas into cumulative counters and reports them once', async () => {
    device.traffic(session.clientKey, 1000, 5000, h.clock.wallMs());
    assert.equal(agent.flushCounters(), 6000);
    assert.equal(agent.flushCounters(), 0, 'a second flush without traffic moves nothing');
    assert.deepEqual(await reporter.report(), { acknowledged: 1, sessions: 1 });
    assert.deepEqual(await controlTotals(), { rx: 5000, tx: 1000 }, 'rx is what the client received (the device sent)');
    assert.deepEqual(await reporter.report(), { acknowledged: 0, sessions: 0 }, 'nothing left to report');
    assert.deepEqual(store.counters(session.id), { rxBytes: 5000, txBytes: 1000, ackedRxBytes: 5000, ackedTxBytes: 1000 });
  });

  it('a lost acknowledgement: the same report is sent again and counted once', async () => {
    device.traffic(session.clientKey, 300, 700);
    agent.flushCounters();
    relay.dropAnswers = true;
    await assert.rejects(reporter.report(), ControlUnreachable);
    assert.deepEqual(await controlTotals(), { rx: 5700, tx: 1300 }, 'the control plane applied it; only its answer was lost');
    // Meanwhile more traffic: it must wait for the next report, not change the one in flight.
    device.traffic(session.clientKey, 11, 22);
    agent.flushCounters();
    relay.dropAnswers = false;
    assert.deepEqual(await reporter.report(), { acknowledged: 2, sessions: 2 }, 'the retry (acknowledged, not applied) and then the new counters');
    assert.deepEqual(await controlTotals(), { rx: 5722, tx: 1311 });
  });

  it('the control plane down: counting goes on, the report waits on disk through a node restart, then counts once', async () => {
    await h.close();
    device.traffic(session.clientKey, 40, 60);
    agent.flushCounters();
    await assert.rejects(reporter.report(), ControlUnreachable);
    // The node restarts (its process and device gone; disk kept) while the control plane is still down.
    store.close();
    openNode();
    assert.equal(agent.restore(), 1, 'the stored peer goes back on the device');
    device.traffic(session.clientKey, 1, 2);
    agent.flushCounters();
    await startControl();
    await reporter.report();
    assert.deepEqual(await controlTotals(), { rx: 5784, tx: 1352 });
  });

  it('a control-plane restart between applying a report and the node hearing of it counts it once', async () => {
    device.traffic(session.clientKey, 500, 500);
    agent.flushCounters();
    relay.dropAnswers = true;
    await assert.rejects(reporter.report(), ControlUnreachable);
    relay.dropAnswers = false;
    await h.close();
    await startControl();
    await reporter.report();
    assert.deepEqual(await controlTotals(), { rx: 6284, tx: 1852 });
    assert.deepEqual(await reporter.report(), { acknowledged: 0, sessions: 0 });
  });

  it('a report that uses up the quota comes back over the channel as a removal: the node takes the peer off its device and its disk', async () => {
    const abort = new AbortController();
    const channel = new NodeChannelClient({ url: h.url, nodeId: node.id, credential: node.credential, backoff: { initialMs: 20, maxMs: 100 } });
    const removed = new Promise<void>((resolve) => {
      void channel.stream({
        since: agent.revision(),
        signal: abort.signal,
        onSnapshot: (snap) => void agent.applySnapshot(snap.revision, snap.peers),
        onPeer: (revision, change) => {
          agent.applyChange(revision, change);
          if (change.op === 'remove') resolve();
        },
      });
    });
    try {
      device.traffic(session.clientKey, 2000, 2000);
      const flushed = agent.flushCounters();
      const sent = await reporter.report();
      const t = await controlTotals();
      assert.deepEqual({ flushed, sent }, { flushed: 4000, sent: { acknowledged: 1, sessions: 1 } });
      assert.ok(t.rx + t.tx >= QUOTA, `over the quota: ${JSON.stringify(t)}`);
      await removed;
      assert.deepEqual(agent.installedPeers(), [], 'off the device');
      assert.deepEqual(store.peers(), [], 'and off the disk: a restart does not bring it back');
      assert.equal(device.peers.size, 0);
    } finally {
      abort.abort();
    }
  });

  it('a node disk behind the control plane (restored from an older copy) renumbers above its sequence instead of losing counts', async () => {
    // Another reporter on a fresh disk starts at sequence 1, below what the control plane applied.
    const freshDir = mkdtempSync(join(tmpdir(), 'tb-outbox-fresh-'));
    const fresh = openNodeStore(join(freshDir, 'node.db'));
    try {
      fresh.saveSnapshot(1, null, [{ publicKey: session.clientKey, sessionId: session.id, allowedIps: ['10.90.0.2/32'] }], h.clock.wallMs());
      // Its cumulative counters run ahead of what the control plane holds by 100 bytes each way.
      const held = await controlTotals();
      fresh.addCounters([{ sessionId: session.id, rx: held.rx + 100, tx: held.tx + 100, lastHandshakeAt: null }]);
      const r = new UsageReporter(fresh, new ControlLink({ base: h.url }), node, () => h.clock.wallMs());
      assert.deepEqual(await r.report(), { acknowledged: 1, sessions: 1 });
      assert.deepEqual(await controlTotals(), { rx: held.rx + 100, tx: held.tx + 100 }, 'applied under a sequence above the control plane\'s');
    } finally {
      fresh.close();
      rmSync(freshDir, { recursive: true, force: true });
    }
  });

  it('over https (the API document\'s spelling, …/v1) the node trusts the control plane\'s own CA given as --ca; without it, refused with the fix', async () => {
    const certDir = mkdtempSync(join(tmpdir(), 'tb-join-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], { stdio: 'ignore' });
    const server = createHttpsServer({ key: readFileSync(join(certDir, 'key.pem')), cert: readFileSync(join(certDir, 'cert.pem')) }, createApp({ control: h.control }).callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
      const view = await new ControlLink({ base: url, ca: readFileSync(join(certDir, 'cert.pem')) }).heartbeat(node.id, node.credential, ['203.0.113.9']);
      assert.equal(view.id, node.id);
      await assert.rejects(new ControlLink({ base: url }).heartbeat(node.id, node.credential, []), (e: Error) => e instanceof ControlRefusal && /not trusted .*--ca/.test(e.message));
    } finally {
      server.closeAllConnections();
      server.close();
      rmSync(certDir, { recursive: true, force: true });
    }
  });

  it('a revoked node\'s reports are refused as such (not retried as unreachable)', async () => {
    store.addCounters([{ sessionId: session.id, rx: 1, tx: 1, lastHandshakeAt: null }]);
    h.control.nodes.revoke(node.id, OPERATOR);
    await assert.rejects(reporter.report(), CredentialRefused);
  });

  it('the node credential file is 0600 and round-trips', () => {
    const d = mkdtempSync(join(tmpdir(), 'tb-cred-'));
    try {
      writeNodeCredential(d, { nodeId: node.id, controlUrl: 'https://control.example', credential: node.credential, node: { pool4: '10.90.0.0/16', pool6: null, interfaceAddresses: ['10.90.0.1/16'], state: 'active' } });
      assert.equal(statSync(join(d, 'node.json')).mode & 0o777, 0o600);
      assert.deepEqual(readNodeCredential(d), { nodeId: node.id, controlUrl: 'https://control.example', credential: node.credential, node: { pool4: '10.90.0.0/16', pool6: null, interfaceAddresses: ['10.90.0.1/16'], state: 'active' } });
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});

/**
 * The control plane restored from an older backup (issue 16's follow-up):
 * the node holds a session the restored database never had, and counters of
 * one it has that ran on past the backup. The report is applied (the unknown
 * session counts nothing, the known one its bytes beyond the backup's), the
 * node's outbox empties instead of holding that report and every later one,
 * and the channel answers the node's resume with the restored database's
 * snapshot, which takes the unknown session's peer off the device and the disk.
 */
describe('a joined node and a control plane restored from an older backup', () => {
  const dirs: string[] = [];
  let h: Harness;
  let relay: Relay;
  let store: NodeStore;
  const tmp = (prefix: string) => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
  const start = async (dir: string) => {
    h = await startHarness({ node: false, dir, config: { tiers: { paid: { maxSessions: 10 } } } });
    relay.target = Number(new URL(h.url).port);
  };

  before(async () => {
    relay = new Relay();
    await relay.listen();
  });
  after(async () => {
    store?.close();
    relay.close();
    await h?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('the report naming a session the restored database lacks is applied for the rest; the channel\'s snapshot takes that peer off', async () => {
    await start(tmp('tb-restore-a-'));
    const link = new ControlLink({ base: `http://127.0.0.1:${relay.port}`, timeoutMs: 5000 });
    const token = h.control.nodeEnrollment.issueToken('restore', 3600_000, OPERATOR).token;
    const e = await link.enroll(token, { public_key: generateKeyPair().publicKey, endpoint: 'restore.example.test:51820', exit_addresses: ['203.0.113.11'], pool4: '10.91.0.0/16' });
    const node = { id: e.node.id, credential: e.credential };
    await link.heartbeat(node.id, node.credential, ['203.0.113.11']);
    const account = await h.signup();
    h.control.accounts.setTier(account.accountId, 'paid', OPERATOR);
    const open = async () => {
      const clientKey = generateKeyPair().publicKey;
      const s = await h.request('POST', '/v1/sessions', { token: account.token, fingerprint: account.fingerprint, body: { region: 'restore', public_key: clientKey } });
      assert.equal(s.status, 201, s.text);
      return { id: s.json.id as string, clientKey };
    };
    const kept = await open();
    const device = new RecordingDataPlane();
    store = openNodeStore(join(tmp('tb-restore-node-'), 'node.db'));
    const agent = new JoinedAgent(store, device, () => h.clock.wallMs(), quiet);
    const reporter = new UsageReporter(store, link, node, () => h.clock.wallMs());
    const channel = new NodeChannelClient({ url: `http://127.0.0.1:${relay.port}`, nodeId: node.id, credential: node.credential, backoff: { initialMs: 20, maxMs: 100 } });
    /** Follows the channel as serve --join does (resuming from what node.db holds) until `done` holds. */
    const follow = async (done: () => boolean) => {
      const ac = new AbortController();
      const running = channel.stream({
        since: agent.held(),
        signal: ac.signal,
        onSnapshot: (s) => void agent.applySnapshot(s.revision, s.peers, s.changeId),
        onPeer: (revision, change, changeId) => void agent.applyChange(revision, change, changeId),
      });
      const until = Date.now() + 10_000;
      while (!done() && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      ac.abort();
      await running;
      assert.ok(done(), 'the channel brought what was expected');
    };
    await follow(() => agent.installedPeers().length === 1);
    device.traffic(kept.clientKey, 100, 1000);
    agent.flushCounters();
    await reporter.report();

    const backup = join(tmp('tb-restore-backup-'), 'tunnelbyte.db');
    h.control.store.db.exec(`VACUUM INTO '${backup}'`); // kept's 1,100 bytes are in the backup
    const lost = await open();
    await follow(() => agent.installedPeers().length === 2);
    device.traffic(kept.clientKey, 10, 20);
    device.traffic(lost.clientKey, 300, 400);
    agent.flushCounters();
    await reporter.report(); // counted by the database about to be lost

    await h.close();
    const restored = tmp('tb-restore-b-');
    copyFileSync(backup, join(restored, 'tunnelbyte.db'));
    await start(restored);
    device.traffic(kept.clientKey, 1, 2);
    device.traffic(lost.clientKey, 3, 4);
    agent.flushCounters();
    // As the node's sync does: a connection the restart cut is retried (a report is repeated whole, so at most once counted).
    let outcome = await reporter.report().catch((e: Error) => e);
    if (outcome instanceof ControlUnreachable) outcome = await reporter.report();
    assert.deepEqual(outcome, { acknowledged: 1, sessions: 2 }, 'applied, not refused for the session it does not know');
    assert.deepEqual(store.backlog(), { inFlight: false, sessions: 0, bytes: 0 }, 'nothing held back on the node');
    const k = await h.request('GET', `/v1/sessions/${kept.id}`, { token: account.token, fingerprint: account.fingerprint });
    assert.deepEqual({ rx: k.json.rx_bytes, tx: k.json.tx_bytes }, { rx: 1022, tx: 111 }, 'all of the node\'s count for the session the backup has (the lost database\'s share counted again, since it is gone)');
    assert.equal((await h.request('GET', `/v1/sessions/${lost.id}`, { token: account.token, fingerprint: account.fingerprint })).status, 404);

    // The node held revision 2 (both adds) of the lost database; the backup is at 1. Its snapshot takes `lost` off.
    await follow(() => agent.installedPeers().length === 1);
    assert.deepEqual(agent.installedPeers(), [kept.clientKey]);
    assert.deepEqual(store.peers().map((p) => p.sessionId), [kept.id], 'off the disk too');
    assert.ok(!device.peers.has(lost.clientKey), 'and off the device');
  });
});
