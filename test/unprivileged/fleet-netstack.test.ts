// A fleet with no root anywhere (issues 14 and 16): `tunnelbyte control` and a node joined to it with
// `serve --join … --netstack`, both processes of uid 65534 (test/support/unprivileged.ts: started as root,
// the test drops to it) on free loopback ports of this machine's own network — no namespace, no TUN, no
// capability. The client is the library Tunnel in this process.
//
//   this process: an HTTP server on 127.0.0.1 (pattern(seed 11)); the customer's /v1 calls with fetch
//   uid 65534:    tunnelbyte control (API and metrics on port 0)
//   uid 65534:    tunnelbyte serve --join API --node-token T --netstack --allow-private 127.0.0.0/8
//   Tunnel ─ WireGuard over lo ─▶ the node's netstack ─▶ net.connect(127.0.0.1:WEB)
//
// Checked: the node runs with no capabilities; a session of the customer is placed on it (its config
// names the node's endpoint); a download through it is byte-exact; the node's count of it reaches the
// control plane exactly (node.db's acknowledged counters = the session's rx/tx = at least the download);
// the node's GET /metrics over real HTTP (device, netstack and the node's own figures: applied revision
// = node.db's, channel connected, nothing unreported) and its metrics port refused to clients; node.db keeps
// the control plane's change id with the revision; with the control plane stopped the tunnel keeps
// carrying and /metrics shows the channel down, a report pending, the bytes unreported and the last report
// ageing, and once it is back (the same database) everything caught up with no new snapshot; closing the
// session on the control plane removes the peer from the node over the channel (the tunnel stops
// carrying); SIGTERM stops the node with status 0.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Tunnel } from '../../src/userspace/tunnel.js';
import { fetchApi } from '../support/exit-net.js';
import { FleetProcess, nodeIdentity } from '../support/fleet-net.js';
import { waitFor } from '../support/netns.js';
import { blobSha, serveBlob } from '../support/proxy-peer.js';
import { REPO_ROOT } from '../support/repo.js';
import { dropMode, NOBODY, privateDir, processFacts, removeDir, spawnUnprivileged, type Drop } from '../support/unprivileged.js';

const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const BLOB = 3 * 1024 * 1024 + 17;

/** A UDP port free on this machine now (bound and released; the node binds it right after). */
function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => (port === 8080 || port === 51820 ? freeUdpPort().then(resolve, reject) : resolve(port)));
    });
  });
}

/** A TCP port free on 127.0.0.1 now (the control plane's API: it must keep its port across a restart). */
function freeTcpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createTcpServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => (port === 8080 ? freeTcpPort().then(resolve, reject) : resolve(port)));
    });
  });
}

/** One sample of a Prometheus text exposition: `name` with exactly `labels` (e.g. `direction="tx"`); NaN when absent. */
function sample(text: string, name: string, labels = ''): number {
  const key = labels ? `${name}{${labels}}` : name;
  const line = text.split('\n').find((l) => l.startsWith(`${key} `));
  return line ? Number(line.slice(key.length + 1)) : NaN;
}

/** The pino record `msg` a process printed, parsed (null until it did). */
function record(p: FleetProcess, msg: string): Record<string, unknown> | null {
  const line = p.log().split('\n').find((l) => l.includes(`"msg":"${msg}"`));
  return line ? (JSON.parse(line) as Record<string, unknown>) : null;
}

describe('serve --join --netstack: a joined exit node with no root, no TUN, no namespace', { timeout: 240_000 }, () => {
  let drop: Drop;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let web: Server;
  let webPort = 0;
  let control: FleetProcess;
  let node: FleetProcess;
  let api = '';
  let apiPort = 0;
  let metricsUrl = '';
  let wgPort = 0;
  let token = '';
  let session: { id: string; config: string; node: string | null; region: string };
  let tunnel: Tunnel | null = null;
  const fp = `fp-fleet-ns-${process.pid}`;

  const tb = (args: string[]) => new FleetProcess(spawnUnprivileged(drop, process.execPath, [TB, ...args], { env }));
  const call = (method: string, path: string, body?: unknown) => fetchApi(api, method, path, { fp, body, ...(token ? { token } : {}) });
  const scrape = async (): Promise<string> => {
    const r = await fetch(`${metricsUrl}/metrics`);
    assert.equal(r.status, 200);
    return r.text();
  };
  /** The revision of the peers node.db holds and the id of the change that made it. */
  const nodeHeld = (): { revision: number; changeId: string | null } | null => {
    const db = new Database(join(dir, 'node', 'node.db'), { readonly: true, fileMustExist: true });
    try {
      const r = db.prepare('SELECT revision, change_id FROM channel_state WHERE id = 1').get() as { revision: number; change_id: string | null } | undefined;
      return r ? { revision: r.revision, changeId: r.change_id } : null;
    } finally {
      db.close();
    }
  };
  /** How many snapshots the node has applied (it logs each). */
  const snapshotsApplied = (): number => node.log().split('\n').filter((l) => l.includes('"msg":"peer snapshot applied"')).length;
  /** Starts `tunnelbyte control` on its data directory and fixed API port; resolves once it runs. */
  const startControl = async (): Promise<void> => {
    const p = tb(['control', '--data', join(dir, 'control'), '--api-listen', `127.0.0.1:${apiPort}`, '--metrics-listen', '127.0.0.1:0', '--sync-interval', '1', '--node-timeout', '30']);
    control = p;
    await waitFor(`tunnelbyte control running (${p.log().slice(-2000)})`, () => {
      if (!p.running) throw new Error(`control exited: ${p.log().slice(-3000)}`);
      return record(p, 'tunnelbyte control plane running');
    }, 60_000, 50);
  };
  /** What the node counted for the session (its node.db, read beside the running node: WAL allows it). */
  const nodeCounted = () => {
    const db = new Database(join(dir, 'node', 'node.db'), { readonly: true, fileMustExist: true });
    try {
      return db.prepare('SELECT rx_bytes AS rx, tx_bytes AS tx, acked_rx_bytes AS ackedRx, acked_tx_bytes AS ackedTx FROM session_counters WHERE session_id = ?').get(session.id) as
        | { rx: number; tx: number; ackedRx: number; ackedTx: number }
        | undefined;
    } finally {
      db.close();
    }
  };
  /** GET /blob/N through the tunnel: status, length and sha256 of what arrived. */
  const download = async (n: number, timeoutMs: number): Promise<{ status: number; bytes: number; sha: string }> => {
    const res = await tunnel!.fetch(`http://127.0.0.1:${webPort}/blob/${n}`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, bytes: body.length, sha: createHash('sha256').update(body).digest('hex') };
  };

  before(async () => {
    drop = dropMode();
    dir = privateDir(drop, 'tb-fleet-ns-');
    env = { PATH: process.env.PATH, HOME: dir, XDG_DATA_HOME: join(dir, 'data-home'), XDG_CONFIG_HOME: join(dir, 'config'), XDG_CACHE_HOME: join(dir, 'cache') };
    web = createServer(async (req, res) => {
      if (await serveBlob(req, res)) return;
      res.statusCode = 404;
      res.end();
    });
    webPort = await new Promise<number>((r) => web.listen(0, '127.0.0.1', () => r((web.address() as AddressInfo).port)));

    apiPort = await freeTcpPort();
    api = `http://127.0.0.1:${apiPort}`;
    await startControl();
  });

  after(async () => {
    await tunnel?.close();
    await node?.stop();
    await control?.stop();
    await new Promise((r) => web?.close(r));
    removeDir(dir);
    if (process.exitCode) console.error(`control:\n${control?.log().slice(-3000)}\nnode:\n${node?.log().slice(-5000)}`);
  });

  test(`the node joins with a token from admin node token and runs as uid ${NOBODY} (or the ordinary user running the suite) with no capabilities`, async () => {
    const admin = tb(['admin', '--data', join(dir, 'control'), 'node', 'token', '--region', 'local']);
    assert.equal(await admin.exited, 0, admin.log());
    const enrollment = admin.log().trim();
    assert.match(enrollment, /^tbe_/);
    wgPort = await freeUdpPort();
    node = tb([
      'serve', '--join', api, '--node-token', enrollment, '--netstack',
      '--data', join(dir, 'node'),
      '--listen-port', String(wgPort),
      '--endpoint', '127.0.0.1',
      '--exit-address', '127.0.0.1',
      '--allow-private', '127.0.0.0/8',
      '--metrics-listen', '127.0.0.1:0',
      '--sync-interval', '1',
      '--heartbeat-interval', '1',
    ]);
    const running = await waitFor(`the joined node running (${node.log().slice(-2000)})`, () => {
      if (!node.running) throw new Error(`serve --join --netstack exited: ${node.log().slice(-3000)}`);
      return record(node, 'tunnelbyte exit node running');
    }, 60_000, 50);
    metricsUrl = String(running!.metrics).replace(/\/$/, '');
    assert.match(metricsUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    const f = processFacts(node.pid);
    assert.match(f.capEff, /^0+$/, 'no effective capabilities');
    assert.equal(f.uid, drop === 'none' ? process.getuid!() : NOBODY);
    assert.ok(f.sameNetns, 'no network namespace of its own');
    assert.match(node.log(), /netstack exit: /, 'the device runs over the netstack');
  });

  test("a customer's session is placed on the node; through it the library Tunnel downloads byte-exact", async () => {
    const signup = await call('POST', '/v1/signup', { fingerprint: fp });
    assert.ok(signup.status === 201 || signup.status === 200, JSON.stringify(signup));
    token = signup.body.token;
    // The region is listed once the node's first heartbeat arrived.
    await waitFor('the region active', async () => ((await call('GET', '/v1/regions')).body.regions as { id: string }[]).some((r) => r.id === 'local'), 20_000, 200);
    const created = await call('POST', '/v1/sessions', { region: 'local' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    session = created.body;
    assert.ok(session.node, 'the session names its node');
    assert.match(session.config, new RegExp(`^Endpoint = 127\\.0\\.0\\.1:${wgPort}$`, 'm'), 'the config carries the node\'s endpoint');
    tunnel = await Tunnel.start({ config: session.config });
    // The peer reaches the node over the channel within moments of the session: retry until it carries.
    const got = await waitFor('a download through the node', async () => {
      const r = await download(BLOB, 30_000).catch(() => null);
      return r && r.bytes === BLOB ? r : null;
    }, 60_000, 500);
    assert.equal(got!.status, 200);
    assert.equal(got!.sha, blobSha(BLOB));
  });

  test("the node's count of the download reaches the control plane exactly", async () => {
    const both = await waitFor('usage at the control plane equal to the node\'s count', async () => {
      const n = nodeCounted();
      const s = (await call('GET', `/v1/sessions/${session.id}`)).body;
      return n && n.rx === n.ackedRx && n.tx === n.ackedTx && s.rx_bytes === n.rx && s.tx_bytes === n.tx && s.rx_bytes >= BLOB ? { n, s } : null;
    }, 30_000, 250);
    assert.ok(both!.s.last_handshake_at, 'the handshake is recorded');
    const usage = (await call('GET', '/v1/usage')).body;
    assert.ok(usage.bytes.total >= both!.s.rx_bytes + both!.s.tx_bytes, `usage ${JSON.stringify(usage.bytes)}`);
  });

  test("the node's GET /metrics: the device's and the netstack's figures and its own, in step with node.db; its port refused to clients", async () => {
    // In step: the channel open, every byte acknowledged (a keepalive counted meanwhile is reported within a sync).
    const text = await waitFor('the node caught up on /metrics', async () => {
      const t = await scrape();
      return sample(t, 'tunnelbyte_node_channel_connected') === 1 && sample(t, 'tunnelbyte_node_reports_pending') === 0 && sample(t, 'tunnelbyte_node_unreported_bytes') === 0 ? t : null;
    }, 20_000, 250);
    const held = nodeHeld()!;
    assert.equal(sample(text!, 'tunnelbyte_node_peer_revision'), held.revision, 'the applied revision is the one node.db holds');
    // node.db keeps, with the revision, the id of the control plane's change that made it: what it resumes with.
    const { nodeId, credential } = nodeIdentity(join(dir, 'node'));
    const published = (await (await fetch(`${api}/v1/nodes/${nodeId}/peers`, { headers: { authorization: `Bearer ${credential}` } })).json()) as { revision: number; changeId: string };
    assert.deepEqual(held, { revision: published.revision, changeId: published.changeId });
    assert.match(published.changeId, /^[0-9a-f]{16}$/);
    assert.ok(sample(text!, 'tunnelbyte_node_peer_revision') >= 1, 'the session\'s peer came as a change or a snapshot with it');
    assert.equal(sample(text!, 'tunnelbyte_node_unreported_sessions'), 0);
    const reportAge = sample(text!, 'tunnelbyte_node_last_report_age_seconds');
    assert.ok(reportAge >= 0 && reportAge < 10, `last report ${reportAge} s ago`);
    const heartbeatAge = sample(text!, 'tunnelbyte_node_last_heartbeat_age_seconds');
    assert.ok(heartbeatAge >= 0 && heartbeatAge < 10, `last heartbeat ${heartbeatAge} s ago`);
    assert.equal(sample(text!, 'tunnelbyte_device_peers'), 1);
    assert.equal(sample(text!, 'tunnelbyte_device_peers_with_session'), 1);
    assert.ok(sample(text!, 'tunnelbyte_device_accepted', 'kind="initiation"') >= 1, "the client's handshake was answered");
    assert.ok(sample(text!, 'tunnelbyte_device_accepted', 'kind="data"') > 0);
    assert.ok(sample(text!, 'tunnelbyte_device_bytes', 'direction="tx"') >= BLOB, 'the download left through the device');
    assert.ok(sample(text!, 'tunnelbyte_netstack_opened', 'kind="tcp"') >= 1, 'the netstack relayed it');
    assert.ok(sample(text!, 'tunnelbyte_device_drops', 'reason="destination-refused"') >= 0, 'drops by reason are there');
    assert.ok(Number.isFinite(sample(text!, 'process_cpu_user_seconds_total')), 'the process figures are there');
    assert.equal((await fetch(`${metricsUrl}/v1/health`)).status, 404, 'the metrics listener serves /metrics only');
    // --allow-private opens 127.0.0.0/8, yet the node's own metrics port there is refused: a RST, though it listens.
    const s = tunnel!.connect(Number(new URL(metricsUrl).port), '127.0.0.1');
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => s.once('error', resolve));
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test('with the control plane stopped the tunnel carries on and /metrics shows the node out of step; back, it catches up', async () => {
    const before = (await call('GET', `/v1/sessions/${session.id}`)).body.rx_bytes as number;
    const snapshots = snapshotsApplied();
    assert.equal(await control.stop(), 0, control.log().slice(-2000));
    const got = await download(BLOB, 30_000);
    assert.equal(got.sha, blobSha(BLOB), 'fail-static: the node forwards for its current peers');
    const text = await waitFor('the node out of step on /metrics', async () => {
      const t = await scrape();
      return sample(t, 'tunnelbyte_node_channel_connected') === 0 &&
        sample(t, 'tunnelbyte_node_reports_pending') === 1 &&
        sample(t, 'tunnelbyte_node_unreported_bytes') >= BLOB &&
        sample(t, 'tunnelbyte_node_last_report_age_seconds') >= 2 &&
        sample(t, 'tunnelbyte_node_last_heartbeat_age_seconds') >= 2
        ? t
        : null;
    }, 30_000, 250);
    assert.equal(sample(text!, 'tunnelbyte_node_unreported_sessions'), 1);
    await startControl();
    await waitFor('the node caught up again on /metrics', async () => {
      const t = await scrape();
      return sample(t, 'tunnelbyte_node_channel_connected') === 1 && sample(t, 'tunnelbyte_node_reports_pending') === 0 && sample(t, 'tunnelbyte_node_unreported_bytes') === 0 && sample(t, 'tunnelbyte_node_last_report_age_seconds') < 5;
    }, 60_000, 250);
    const after = (await call('GET', `/v1/sessions/${session.id}`)).body.rx_bytes as number;
    assert.ok(after - before >= BLOB, `the download while the control plane was down is counted (${after - before} bytes)`);
    assert.equal(snapshotsApplied(), snapshots, 'the same database back: the node resumed from its revision and change id, no snapshot');
  });

  test('closing the session on the control plane takes the peer off the node: the tunnel stops carrying', async () => {
    assert.equal((await call('DELETE', `/v1/sessions/${session.id}`)).status, 200);
    await waitFor('the tunnel cut', async () => {
      const r = await download(100_000, 3000).catch(() => null);
      return r === null || r.bytes < 100_000;
    }, 20_000, 500);
  });

  test('SIGTERM stops the node with status 0 after its last report', async () => {
    assert.equal(await node.stop(), 0, node.log().slice(-2000));
    assert.match(node.log(), /final usage report/);
    assert.match(node.log(), /"msg":"stopped"/);
  });
});
