// The fleet end to end (issue 16), machines as network namespaces (test/support/fleet-net.ts):
// `tunnelbyte control` in one, exit nodes `tunnelbyte serve --join` in three (exit-a and exit-b in
// region A, exit-c in region B), two clients running Debian's wireguard-go with the configs the
// API gives them, and an internet with an HTTP server. Heartbeats every second, counters flushed
// to the node's disk and reported every second, a node down after 4 s without a heartbeat
// (--node-timeout), so the whole file stays within a few minutes on a loaded machine.
//
// Usage is checked against the client's own WireGuard counters (`wg show … transfer`, per peer,
// so per session). A node counts what it sent and what it accepted, so the control plane's figure
// for the bytes the client received is at least the client's, and more by at most the datagrams
// the kernel dropped at the client's full UDP socket (/proc/net/snmp Udp InErrors in its namespace:
// wireguard-go starved of CPU on a loaded machine does that) times the largest datagram; the bytes
// the client sent are at most the client's, and less by at most the datagrams dropped at the exit's
// socket and the handshake initiations the exit dropped before it had the peer (148 bytes each).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { privilegedSkipReason, waitFor, type Netns } from '../support/netns.js';
import { fetchFile, loadSessionConfig } from '../support/exit-net.js';
import { CONTROL_API, createFleetNet, INTERNET_ADDRESS, nodeIdentity, REGION_A, REGION_B, type ClientMachine, type ExitName, type FleetNet, type FleetProcess } from '../support/fleet-net.js';
import { REPO_ROOT } from '../support/repo.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'curl', 'nft', 'iperf3']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const NODE_TIMEOUT_S = 4;
/** The longest a counted byte may wait on a node before its disk has it (--sync-interval 1), with a second of scheduling slack. */
const FLUSH_BOUND_S = 2;
/** Rate of the downloads that a restart or a kill interrupts, so the flush bound is a byte count. */
const RATE = 1024 * 1024;
/** Handshake initiations an exit may drop before the channel brought it the peer (each 148 bytes), at most. */
const EARLY_INITIATIONS_BYTES = 10 * 148;
/** The largest datagram of a tunnel: a 1420-byte inner packet (the MTU of both ends) and 32 bytes of header and tag. */
const MAX_DATAGRAM = 1420 + 32;

/** Datagrams the kernel dropped in `ns` since it was made because a UDP socket's buffer was full (Udp InErrors). */
function udpDrops(ns: Netns): number {
  const [names, values] = ns.run('sh', ['-c', "grep '^Udp:' /proc/net/snmp"]).trim().split('\n').map((l) => l.split(/\s+/));
  return Number(values![names!.indexOf('InErrors')]);
}

interface Customer {
  client: ClientMachine;
  token: string;
  fp: string;
}

interface Session {
  id: string;
  node: string;
  region: string;
  [k: string]: unknown;
}

describe('the fleet: a control plane and three joined exits in two regions', { skip: skip ?? false }, () => {
  let net: FleetNet;
  let tmp: string;
  let controlData: string;
  let control: FleetProcess;
  const exitData: Record<ExitName, string> = { 'exit-a': '', 'exit-b': '', 'exit-c': '' };
  const exitProc: Partial<Record<ExitName, FleetProcess>> = {};
  const nodeId: Record<ExitName, string> = { 'exit-a': '', 'exit-b': '', 'exit-c': '' };
  const exitOf = (id: string): ExitName => (Object.keys(nodeId) as ExitName[]).find((n) => nodeId[n] === id)!;
  const customers: Customer[] = [];

  const startControl = async () => {
    control = await net.startControl(controlData, ['--node-timeout', String(NODE_TIMEOUT_S), '--anonymous-sessions', '10', '--log-level', 'warn']);
  };
  const admin = (...args: string[]) => execFileSync(process.execPath, [TB, 'admin', '--data', controlData, ...args], { encoding: 'utf8' });
  /** Public routes are limited per source (10 burst, 1/s): the test's own polls come from the internet namespace, at most once a second. */
  const regions = (): Record<string, number> =>
    Object.fromEntries((net.api(net.internet, 'GET', '/v1/regions').body.regions as { id: string; nodes: number }[]).map((r) => [r.id, r.nodes]));
  const createSession = (c: Customer, region: string) => net.api(c.client.ns, 'POST', '/v1/sessions', { token: c.token, fp: c.fp, body: { region } });
  const sessionStatus = (c: Customer, id: string) => net.api(c.client.ns, 'GET', `/v1/sessions/${id}`, { token: c.token, fp: c.fp });
  /** The client's WireGuard counters of its one peer: [received, sent]. */
  const clientTransfer = (c: ClientMachine): [number, number] => {
    const [, rx, tx] = c.ns.run('wg', ['show', c.wg, 'transfer']).trim().split('\t');
    return [Number(rx), Number(tx)];
  };
  const connect = (c: Customer, s: Session) => {
    const exit = net.exits[exitOf(s.node)];
    loadSessionConfig(c.client.ns, c.client.wg, s, { endpoint: `${exit.address}:51820`, routes: [`${INTERNET_ADDRESS}/32`] });
  };
  /** What the internet sees a client's request come from, through its tunnel. */
  const seenFrom = (c: ClientMachine) => c.ns.try('curl', ['-s', '--max-time', '5', `http://${INTERNET_ADDRESS}:8000/ip`]).stdout.trim();
  const startExit = async (name: ExitName, token?: string) => {
    exitProc[name] = await net.startExit(name, exitData[name], token ? { token } : {});
  };

  before(async () => {
    net = await createFleetNet();
    tmp = mkdtempSync(join(tmpdir(), 'tb-fleet-'));
    controlData = join(tmp, 'control');
    await startControl();
    for (const name of ['exit-a', 'exit-b', 'exit-c'] as const) {
      exitData[name] = join(tmp, name);
      await startExit(name, net.enrollmentToken(controlData, net.exits[name].region));
      nodeId[name] = nodeIdentity(exitData[name]).nodeId;
      assert.equal(statSync(join(exitData[name], 'node.json')).mode & 0o777, 0o600, 'the credential is kept 0600');
    }
    await waitFor('both regions listed with their nodes', () => {
      const r = regions();
      return r[REGION_A] === 2 && r[REGION_B] === 1;
    }, 20_000, 1100);
    for (const [i, client] of net.clients.entries()) {
      const fp = `fleet-${i}-${process.pid}`;
      const signup = net.api(client.ns, 'POST', '/v1/signup', { body: { fingerprint: fp } });
      assert.equal(signup.status, 201, JSON.stringify(signup.body));
      customers.push({ client, token: signup.body.token, fp });
    }
  });

  after(async () => {
    const failed = process.exitCode;
    for (const p of [...Object.values(exitProc), control]) await p?.stop(5_000);
    if (failed) {
      console.error(`control:\n${control?.log().slice(-3000)}`);
      for (const [n, p] of Object.entries(exitProc)) console.error(`${n}:\n${p?.log().slice(-3000)}`);
    }
    net?.release();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  const first: Session[] = [];

  test('sessions of region A land on both of its nodes (least loaded) and carry traffic out of their own exit', async () => {
    for (const c of customers) {
      const r = createSession(c, REGION_A);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      first.push(r.body);
    }
    assert.deepEqual(first.map((s) => exitOf(s.node)).sort(), ['exit-a', 'exit-b'], 'one on each node of region A');
    for (const [i, c] of customers.entries()) {
      connect(c, first[i]!);
      const exit = net.exits[exitOf(first[i]!.node)];
      assert.equal(await waitFor('traffic through the tunnel', () => seenFrom(c.client) || null, 20_000, 500), exit.address, 'the internet sees the exit the session is on');
      assert.equal(fetchFile(c.client.ns, 1 << 20), 1 << 20);
    }
  });

  test('GET /v1/sessions/{id} names the node and region; /v1/ip attributes every node\'s exit address', () => {
    for (const [i, c] of customers.entries()) {
      const s = sessionStatus(c, first[i]!.id);
      assert.equal(s.status, 200);
      assert.equal(s.body.node, first[i]!.node);
      assert.equal(s.body.region, REGION_A);
    }
    for (const name of ['exit-a', 'exit-b', 'exit-c'] as const) {
      const r = net.api(net.internet, 'GET', `/v1/ip/${net.exits[name].address}`);
      assert.equal(r.status, 200);
      assert.equal(r.body.exit, true, name);
      assert.equal(r.body.node, nodeId[name]);
      assert.equal(r.body.region, net.exits[name].region);
    }
    assert.equal(net.api(net.internet, 'GET', `/v1/ip/${INTERNET_ADDRESS}`).body.exit, false);
  });

  test("a node's credential reads only its own peers", () => {
    const a = nodeIdentity(exitData['exit-a']);
    const own = net.api(net.exits['exit-a'].ns, 'GET', `/v1/nodes/${nodeId['exit-a']}/peers`, { token: a.credential });
    assert.equal(own.status, 200);
    assert.ok(Array.isArray(own.body.peers));
    const other = net.api(net.exits['exit-a'].ns, 'GET', `/v1/nodes/${nodeId['exit-b']}/peers`, { token: a.credential });
    assert.equal(other.status, 403, "exit-a's credential cannot read exit-b's peers");
    assert.ok(!JSON.stringify(other.body).includes('publicKey'));
  });

  /**
   * Waits until the control plane shows this session's bytes as the client counted them, within what
   * the kernels dropped (see the top of the file), and returns both. `lostBytes`: what the node may
   * have counted and lost (a kill -9 before its flush).
   */
  const settledUsage = async (c: Customer, s: Session, lostBytes = 0) =>
    waitFor('the control plane caught up with the client\'s counters', () => {
      const [rx, tx] = clientTransfer(c.client);
      const st = sessionStatus(c, s.id).body;
      const exit = net.exits[exitOf(s.node)].ns;
      const clientDrops = udpDrops(c.client.ns);
      const exitDrops = udpDrops(exit);
      const rxOk = st.rx_bytes <= rx + clientDrops * MAX_DATAGRAM && st.rx_bytes >= rx - lostBytes;
      const txOk = st.tx_bytes <= tx && st.tx_bytes >= tx - EARLY_INITIATIONS_BYTES - exitDrops * MAX_DATAGRAM - lostBytes;
      const seen = { control: { rx: st.rx_bytes, tx: st.tx_bytes }, client: { rx, tx }, clientDrops, exitDrops };
      if (rxOk && txOk) return seen;
      throw new Error(JSON.stringify(seen)); // waitFor reports the last one
    }, 20_000, 500);

  test('usage matches the client\'s counters after the control plane is restarted in the middle of a transfer; meanwhile the tunnels keep flowing', async () => {
    const c = customers[0]!;
    const n = 6 * RATE;
    const transfer = c.client.ns.spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download}', '--limit-rate', String(RATE), '--max-time', '60', `http://${INTERNET_ADDRESS}:8000/file?n=${n}`]);
    let got = '';
    transfer.stdout!.on('data', (d) => (got += d));
    const done = new Promise<number | null>((resolve) => transfer.once('exit', resolve));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await control.stop(), 0, 'the control plane stops cleanly');
    // Fail-static: with the control plane gone the other client's tunnel still moves data.
    assert.equal(fetchFile(customers[1]!.client.ns, 1 << 20), 1 << 20, 'a tunnel works while the control plane is down');
    await new Promise((r) => setTimeout(r, 1500));
    await startControl();
    assert.equal(await done, 0);
    assert.equal(Number(got), n, 'the interrupted transfer completed');
    const u = await settledUsage(c, first[0]!);
    assert.ok(u.control.rx > n, `at least the file's bytes: ${JSON.stringify(u)}`);
  });

  test(`usage after a node is kill -9ed mid-transfer and restarted: nothing counted twice, at most ${FLUSH_BOUND_S} s of the transfer lost`, async () => {
    const c = customers[0]!;
    const s = first[0]!;
    const name = exitOf(s.node);
    const transfer = c.client.ns.spawn('curl', ['-s', '-o', '/dev/null', '--limit-rate', String(RATE), '--max-time', '30', `http://${INTERNET_ADDRESS}:8000/file?n=${8 * RATE}`]);
    const done = new Promise((resolve) => transfer.once('exit', resolve));
    await new Promise((r) => setTimeout(r, 3000));
    await exitProc[name]!.kill9();
    transfer.kill();
    await done;
    await startExit(name); // the credential and the counters are on its disk: no token
    assert.equal(await waitFor('the session works again', () => seenFrom(c.client) || null, 20_000, 500), net.exits[name].address);
    assert.equal(fetchFile(c.client.ns, 1 << 20), 1 << 20);
    // The bytes counted before the kill that the node had not yet written to its disk are lost: at most one flush interval of the transfer.
    await settledUsage(c, s, FLUSH_BOUND_S * RATE);
  });

  test(`exit-a killed: down after the heartbeat timeout (${NODE_TIMEOUT_S} s), new sessions of region A go to exit-b`, async () => {
    await exitProc['exit-a']!.kill9();
    await waitFor('exit-a marked down', () => regions()[REGION_A] === 1, (NODE_TIMEOUT_S + 10) * 1000, 1100);
    const c = customers[1]!;
    for (let i = 0; i < 2; i++) {
      const r = createSession(c, REGION_A);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(exitOf(r.body.node), 'exit-b');
    }
  });

  test('every node of a region down: a session there is a 503; back when its node is', async () => {
    await exitProc['exit-c']!.kill9();
    await waitFor('region B unlisted', () => regions()[REGION_B] === undefined, (NODE_TIMEOUT_S + 10) * 1000, 1100);
    const r = createSession(customers[1]!, REGION_B);
    assert.equal(r.status, 503);
    assert.match(r.body.error, /no active node/);
    await startExit('exit-c');
    await waitFor('region B back', () => regions()[REGION_B] === 1, 20_000, 1100);
    const again = createSession(customers[1]!, REGION_B);
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.equal(exitOf(again.body.node), 'exit-c');
  });

  test('drain: no new sessions on the node, its existing ones keep working', async () => {
    await startExit('exit-a');
    await waitFor('exit-a up again', () => regions()[REGION_A] === 2, 20_000, 1100);
    admin('node', 'drain', nodeId['exit-b']);
    const c = customers[1]!;
    for (let i = 0; i < 3; i++) {
      const r = createSession(c, REGION_A);
      assert.equal(r.status, 201, JSON.stringify(r.body));
      assert.equal(exitOf(r.body.node), 'exit-a', 'exit-b is draining, whatever its load');
    }
    const onB = customers.findIndex((_, i) => exitOf(first[i]!.node) === 'exit-b');
    const stays = customers[onB]!;
    assert.equal(seenFrom(stays.client), net.exits['exit-b'].address, 'the session on the draining node still carries traffic');
    assert.equal(fetchFile(stays.client.ns, 1 << 20), 1 << 20);
    assert.equal(sessionStatus(stays, first[onB]!.id).body.state, 'active');
  });

  test('a revoked node is refused: its credential at once, its next start with one clear line', async () => {
    const cred = nodeIdentity(exitData['exit-c']).credential;
    admin('node', 'revoke', nodeId['exit-c']);
    const r = net.api(net.exits['exit-c'].ns, 'GET', `/v1/nodes/${nodeId['exit-c']}/peers`, { token: cred });
    assert.equal(r.status, 401);
    const stopped = await Promise.race([exitProc['exit-c']!.exited, new Promise((r) => setTimeout(() => r('running'), 20_000))]);
    assert.equal(stopped, 1, 'the running node learns it was revoked and stops');
    const again = net.exits['exit-c'].ns.spawn('node', [TB, 'serve', '--join', CONTROL_API, '--data', exitData['exit-c'], '--endpoint', net.exits['exit-c'].address, '--tun', net.exits['exit-c'].tun]);
    let out = '';
    again.stdout!.on('data', (d) => (out += d));
    again.stderr!.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((resolve) => again.once('exit', resolve));
    assert.equal(code, 1, out);
    assert.match(out, /revoked/i);
  });
});
