// `tunnelbyte serve --join` end to end (issue 16), inside network namespaces this test makes:
//
//   nsK "control"   192.0.2.1/24 — `tunnelbyte control` (the API and the store, no data plane)
//   nsE "exit"      192.0.2.2/24 towards the control plane; 203.0.113.2/24 (default route) towards the
//                   internet; 198.51.100.1/24 towards the client — `tunnelbyte serve --join`, with NAT
//   nsI "internet"  203.0.113.1/24 — an HTTP server
//   nsC "client"    198.51.100.2/24 — Debian's wireguard-go loaded with the session's config
//
// The customer's calls go to the control plane (curl inside nsK); the tunnel goes to the joined exit.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import Database from 'better-sqlite3';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { ifname, startInterface } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';
import { curlApi, fetchFile, fetchText, loadSessionConfig, signupAndSession, startInternet } from '../support/exit-net.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'curl', 'nft']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const API = 'http://127.0.0.1:8080';
const FILE_BYTES = 2 * 1024 * 1024;
const TUN = ifname('tbj');
const WG = ifname('wgj');

describe('tunnelbyte serve --join: an exit node of tunnelbyte control', { skip: skip ?? false }, () => {
  let ctl: Netns, exit: Netns, inet: Netns, client: Netns;
  let controlDir: string, nodeDir: string;
  let control: ChildProcess | null = null;
  let node: ChildProcess | null = null;
  let logs = '';
  let nodeLog = '';
  let customer: { token: string; fp: string; session: any };

  const startControl = async () => {
    control = ctl.spawn('node', [TB, 'control', '--data', controlDir, '--api-listen', '0.0.0.0:8080', '--metrics-listen', '127.0.0.1:9090', '--sync-interval', '1', '--node-timeout', '30']);
    control.stdout!.on('data', (d) => (logs += d));
    control.stderr!.on('data', (d) => (logs += d));
    await waitFor('control API up', () => ctl.try('curl', ['-sf', `${API}/v1/health`]).status === 0, 20_000);
  };
  const stopControl = async () => {
    const c = control!;
    control = null;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await gone;
  };
  /** The joined node; resolves once it logged that it runs (or rejects with its output when it exits first). */
  const startNode = async (extra: string[] = []) => {
    const mark = nodeLog.length;
    node = exit.spawn('node', [TB, 'serve', '--join', 'http://192.0.2.1:8080/v1', '--data', nodeDir, '--endpoint', '198.51.100.1', '--exit-address', '203.0.113.2', '--tun', TUN, '--pool', '10.70.0.0/16', '--sync-interval', '1', '--heartbeat-interval', '1', ...extra]);
    const proc = node;
    proc.stdout!.on('data', (d) => (nodeLog += d));
    proc.stderr!.on('data', (d) => (nodeLog += d));
    let exited: number | null = null;
    proc.once('exit', (code) => (exited = code ?? -1));
    await waitFor('the joined node running', () => {
      if (exited !== null) throw new Error(`serve --join exited (${exited}):\n${nodeLog.slice(mark)}`);
      return nodeLog.slice(mark).includes('tunnelbyte exit node running');
    }, 30_000);
    return proc;
  };
  /** One sample of the node's GET /metrics (on its default --metrics-listen, 127.0.0.1:9090 in its namespace); NaN when absent. */
  const nodeMetric = (name: string): number => {
    const text = exit.run('curl', ['-sf', 'http://127.0.0.1:9090/metrics']);
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.slice(name.length + 1)) : NaN;
  };
  const session = () => curlApi(ctl, API, 'GET', `/v1/sessions/${customer.session.id}`, { token: customer.token, fp: customer.fp }).body;
  /** What the node has counted for the session (its node.db, read beside the running node: WAL allows it). */
  const nodeCounted = () => {
    const db = new Database(join(nodeDir, 'node.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT rx_bytes AS rx, tx_bytes AS tx, acked_rx_bytes AS ackedRx, acked_tx_bytes AS ackedTx FROM session_counters WHERE session_id = ?').get(customer.session.id) as
        | { rx: number; tx: number; ackedRx: number; ackedTx: number }
        | undefined;
    } finally {
      db.close();
    }
  };
  /** Waits until the control plane holds exactly what the node counted (all of it acknowledged), at least `atLeast` bytes to the client. */
  const usageCaughtUp = (atLeast: number) =>
    waitFor('usage at the control plane equal to the node\'s count', () => {
      const n = nodeCounted();
      const s = session();
      return n && n.rx === n.ackedRx && n.tx === n.ackedTx && s.rx_bytes === n.rx && s.tx_bytes === n.tx && s.rx_bytes >= atLeast ? { node: n, control: s } : null;
    }, 20_000, 250);

  before(async () => {
    ctl = Netns.create('K');
    exit = Netns.create('J');
    inet = Netns.create('I');
    client = Netns.create('C');
    controlDir = mkdtempSync(join(tmpdir(), 'tb-join-control-'));
    nodeDir = mkdtempSync(join(tmpdir(), 'tb-join-node-'));
    veth(ctl, ['192.0.2.1/24'], exit, ['192.0.2.2/24']);
    veth(inet, ['203.0.113.1/24'], exit, ['203.0.113.2/24']);
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    veth(exit, ['198.51.100.1/24'], client, ['198.51.100.2/24']);
    await startInternet(inet);
    startInterface(client, 'wireguard-go', WG);
    await startControl();
  });

  after(() => {
    node?.kill('SIGKILL');
    control?.kill('SIGKILL');
    for (const ns of [client, exit, inet, ctl]) ns?.destroy();
    for (const d of [controlDir, nodeDir]) if (d) rmSync(d, { recursive: true, force: true });
    if (process.exitCode) console.error(`control:\n${logs.slice(-3000)}\nnode:\n${nodeLog.slice(-5000)}`);
  });

  test('without a token the first start is refused in one line; with one the node joins and keeps its credential 0600', async () => {
    const bare = exit.try('node', [TB, 'serve', '--join', 'http://192.0.2.1:8080', '--data', nodeDir, '--tun', TUN, '--endpoint', '198.51.100.1'], { timeoutMs: 30_000 });
    assert.equal(bare.status, 1);
    assert.match(bare.stderr, /has not joined yet: give --node-token/);
    const bad = exit.try('node', [TB, 'serve', '--join', 'http://192.0.2.1:8080', '--node-token', `tbe_${'x'.repeat(43)}`, '--data', nodeDir, '--tun', TUN, '--endpoint', '198.51.100.1'], { timeoutMs: 30_000 });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /refused the enrollment token/);
    const token = execFileSync('node', [TB, 'admin', '--data', controlDir, 'node', 'token', '--region', 'local'], { encoding: 'utf8', env: { ...process.env, TB_DATA: '' } }).trim();
    await startNode(['--node-token', token]);
    assert.equal(statSync(join(nodeDir, 'node.json')).mode & 0o777, 0o600);
    assert.ok(!nodeLog.includes(token.slice(4)), 'the token is not logged');
    const nodes = execFileSync('node', [TB, 'admin', '--data', controlDir, 'node', 'list', '--json'], { encoding: 'utf8', env: { ...process.env, TB_DATA: '' } });
    assert.match(nodes, /198\.51\.100\.1:51820/, 'registered with its endpoint');
  });

  test('a session placed on the joined node carries traffic, and its usage reaches the control plane exactly', async () => {
    const fp = `fp-join-${process.pid}`;
    const { token, session: s } = signupAndSession(ctl, API, fp);
    customer = { token, fp, session: s };
    loadSessionConfig(client, WG, s, { endpoint: '198.51.100.1:51820', routes: ['203.0.113.0/24'] });
    assert.equal(await waitFor('the tunnel up', () => fetchFile(client, FILE_BYTES, 10) === FILE_BYTES || null, 30_000, 500), true);
    assert.equal(fetchText(client, 'http://203.0.113.1:8000/ip'), '203.0.113.2', 'the internet sees the joined exit');
    // Exact: the control plane holds what the node counted (no upper bound from the file alone: the
    // first attempts while the tunnel comes up may move part of a file too).
    const u = (await usageCaughtUp(FILE_BYTES))!;
    assert.ok(u.control.last_handshake_at, 'the handshake reached the control plane');
    assert.equal(u.control.node, s.node);
    // The TUN node's /metrics: its device and its place in the channel.
    assert.equal(nodeMetric('tunnelbyte_device_peers'), 1);
    assert.ok(nodeMetric('tunnelbyte_device_accepted{kind="initiation"}') >= 1, 'the handshake was answered');
    assert.equal(nodeMetric('tunnelbyte_node_channel_connected'), 1);
    assert.ok(nodeMetric('tunnelbyte_node_peer_revision') >= 1);
    assert.ok(Number.isNaN(nodeMetric('tunnelbyte_netstack_relays{kind="tcp"}')), 'no netstack figures on the TUN exit');
  });

  test('the control plane stopped: the tunnel keeps flowing and counting, also through a kill -9 and restart of the node; back: usage caught up', async () => {
    const before = session().rx_bytes as number;
    await stopControl();
    assert.equal(fetchFile(client, FILE_BYTES, 20), FILE_BYTES, 'forwarding with the control plane down');
    await waitFor('the node counted it', () => (nodeCounted()!.rx >= before + FILE_BYTES ? true : null), 10_000, 250);
    await waitFor('/metrics: the channel down and a report waiting', () => (nodeMetric('tunnelbyte_node_channel_connected') === 0 && nodeMetric('tunnelbyte_node_reports_pending') === 1 && nodeMetric('tunnelbyte_node_unreported_bytes') >= FILE_BYTES) || null, 10_000, 250);
    // The node dies and comes back while the control plane is still down: peers and pools come from its disk.
    const old = node!;
    const gone = new Promise((r) => old.once('exit', r));
    old.kill('SIGKILL');
    await gone;
    await startNode();
    assert.match(nodeLog, /starting from the node record and peers on disk/);
    assert.equal(await waitFor('the tunnel through the restarted node', () => fetchFile(client, FILE_BYTES, 10) === FILE_BYTES || null, 30_000, 500), true);
    await startControl();
    const u = (await usageCaughtUp(before + 2 * FILE_BYTES))!;
    assert.ok(u.control.rx_bytes >= before + 2 * FILE_BYTES);
  });

  test('SIGTERM: the last counts are reported, TUN and NAT removed (exit 0)', async () => {
    const before = session().rx_bytes as number;
    assert.equal(fetchFile(client, FILE_BYTES, 20), FILE_BYTES);
    const proc = node!;
    const code = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    proc.kill('SIGTERM'); // at once: less than one sync interval after the transfer
    assert.equal(await code, 0);
    node = null;
    assert.match(nodeLog, /"usage":"reported"/);
    const n = nodeCounted()!;
    assert.ok(n.rx >= before + FILE_BYTES, 'the bytes since the last flush were counted at shutdown');
    assert.deepEqual({ rx: n.ackedRx, tx: n.ackedTx }, { rx: n.rx, tx: n.tx }, 'and acknowledged');
    const s = session();
    assert.deepEqual({ rx: s.rx_bytes, tx: s.tx_bytes }, { rx: n.rx, tx: n.tx });
    assert.ok(!exit.links().includes(TUN), 'the TUN is gone');
    assert.notEqual(exit.try('nft', ['list', 'table', 'inet', `tunnelbyte_${TUN}`]).status, 0, 'the NAT table is gone');
  });

  test('a session closed while its node was down is removed when the node is back (resumed from its revision): the handshake no longer works', async () => {
    const closed = curlApi(ctl, API, 'DELETE', `/v1/sessions/${customer.session.id}`, { token: customer.token, fp: customer.fp });
    assert.equal(closed.status, 200, JSON.stringify(closed.body));
    const mark = nodeLog.length;
    await startNode();
    assert.match(nodeLog.slice(mark), /"restoredPeers":1/, 'the stored peer went back on first (fail-static)');
    await waitFor('traffic refused', () => fetchText(client, 'http://203.0.113.1:8000/ip', 2) === null || null, 20_000, 250);
    // A fresh handshake (the config loaded again) is not answered either.
    loadSessionConfig(client, WG, customer.session, { endpoint: '198.51.100.1:51820', routes: ['203.0.113.0/24'] });
    assert.equal(fetchText(client, 'http://203.0.113.1:8000/ip', 6), null);
    const hs = client.run('wg', ['show', WG, 'latest-handshakes']).trim().split(/\s+/)[1];
    assert.equal(hs, '0', 'no handshake completed after the reload');
  });

  test('a revoked node is told so: it stops with one line and exit status 1, and cannot start again', async () => {
    const id = JSON.parse(execFileSync('node', [TB, 'admin', '--data', controlDir, 'node', 'list', '--json'], { encoding: 'utf8', env: { ...process.env, TB_DATA: '' } }))[0].id as string;
    const proc = node!;
    let stderr = '';
    proc.stderr!.on('data', (d) => (stderr += d));
    const code = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    execFileSync('node', [TB, 'admin', '--data', controlDir, 'node', 'revoke', id], { env: { ...process.env, TB_DATA: '' } });
    assert.equal(await code, 1);
    assert.match(stderr, /refused the credential of node .*: stopping/);
    node = null;
    assert.ok(!exit.links().includes(TUN), 'the TUN is gone');
    const again = exit.try('node', [TB, 'serve', '--join', 'http://192.0.2.1:8080', '--data', nodeDir, '--tun', TUN, '--endpoint', '198.51.100.1'], { timeoutMs: 30_000 });
    assert.equal(again.status, 1);
    assert.match(again.stderr, /revoked or removed/);
    assert.equal(again.stderr.trim().split('\n').length, 1, 'one line');
  });
});
