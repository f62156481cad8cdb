// `tunnelbyte serve` end to end, inside network namespaces this test makes:
//
//   nsI "internet"  203.0.113.1/24, 2001:db8:ff::1/64 — an HTTP server; no route to the client pools
//   nsE "exit"      203.0.113.2/24, 2001:db8:ff::2/64 (default route) and 198.51.100.1/24 towards clients;
//                   runs `tunnelbyte serve` with NAT
//   nsC, nsD        clients at 198.51.100.2 and 198.51.101.2: Debian's wireguard-go loaded with the API's config
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { ifname, startInterface } from '../support/wg.js';
import { REPO_ROOT } from '../support/repo.js';
import { curlApi, fetchFile, loadSessionConfig, signupAndSession, startInternet } from '../support/exit-net.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'curl', 'nft']);
const TB = join(REPO_ROOT, 'bin/tunnelbyte.js');
const AUTOCANNON = join(REPO_ROOT, 'node_modules/autocannon/autocannon.js');
const API = 'http://198.51.100.1:8080';
const FILE_BYTES = 4 * 1024 * 1024;
const TUN = ifname('tbx');
const WG1 = ifname('wgc');
const WG2 = ifname('wgc');

interface Client {
  ns: Netns;
  fp: string;
  token: string;
  session: any;
}

describe('tunnelbyte serve', { skip: skip ?? false }, () => {
  let inet: Netns, exit: Netns, c1: Netns, c2: Netns;
  let dataDir: string;
  let server: ChildProcess | null = null;
  let serverLog = '';

  const startServer = async () => {
    server = exit.spawn('node', [TB, 'serve', '--data', dataDir, '--endpoint', '198.51.100.1', '--tun', TUN, '--sync-interval', '1', '--anonymous-quota', '40MiB', '--dns', '203.0.113.53', '--log-level', 'info']);
    server.stdout!.on('data', (d) => (serverLog += d));
    server.stderr!.on('data', (d) => (serverLog += d));
    await waitFor('API up', () => exit.try('curl', ['-sf', 'http://127.0.0.1:8080/v1/health']).status === 0, 20_000);
  };

  const api = (ns: Netns, method: string, path: string, opts: { token?: string; fp?: string; body?: unknown } = {}) => curlApi(ns, API, method, path, opts);

  /** Signs up, creates a session and loads its config into wireguard-go. */
  const connect = (ns: Netns, name: string, ifname: string): Client => {
    const fp = `fp-${name}-${process.pid}`;
    const { token, session } = signupAndSession(ns, API, fp);
    loadConfig(ns, ifname, session);
    return { ns, fp, token, session };
  };

  const loadConfig = (ns: Netns, ifname: string, session: any) =>
    loadSessionConfig(ns, ifname, session, { endpoint: '198.51.100.1:51820', routes: ['203.0.113.0/24', '2001:db8:ff::/64'] });

  before(async () => {
    inet = Netns.create('I');
    exit = Netns.create('E');
    c1 = Netns.create('C');
    c2 = Netns.create('D');
    dataDir = mkdtempSync(join(tmpdir(), 'tb-serve-'));
    veth(inet, ['203.0.113.1/24', '2001:db8:ff::1/64'], exit, ['203.0.113.2/24', '2001:db8:ff::2/64']);
    exit.run('ip', ['route', 'add', 'default', 'via', '203.0.113.1']);
    exit.run('ip', ['-6', 'route', 'add', 'default', 'via', '2001:db8:ff::1']);
    // The exit's client-facing side: one link per client; the second reaches 198.51.100.1 through a gateway.
    veth(exit, ['198.51.100.1/24'], c1, ['198.51.100.2/24']);
    veth(exit, ['198.51.101.1/24'], c2, ['198.51.101.2/24']);
    c2.run('ip', ['route', 'add', '198.51.100.0/24', 'via', '198.51.101.1']);
    await startInternet(inet);
    startInterface(c1, 'wireguard-go', WG1);
    startInterface(c2, 'wireguard-go', WG2);
    await startServer();
  });

  after(() => {
    server?.kill('SIGKILL');
    for (const ns of [c1, c2, exit, inet]) ns?.destroy();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    if (process.exitCode) console.error(serverLog.slice(-4000));
  });

  let first: Client;

  test('a client from the API downloads through the exit, seen from the exit\'s address; status and usage follow', async () => {
    first = connect(c1, 'one', WG1);
    const got = fetchFile(c1, FILE_BYTES);
    assert.equal(got, FILE_BYTES, 'the whole file arrived');
    assert.equal(c1.run('curl', ['-s', '--max-time', '5', 'http://203.0.113.1:8000/ip']).trim(), '203.0.113.2', 'the internet sees the exit');
    const status = await waitFor('status with handshake and bytes', () => {
      const s = api(c1, 'GET', `/v1/sessions/${first.session.id}`, { token: first.token, fp: first.fp });
      return s.body.last_handshake_at && s.body.rx_bytes >= FILE_BYTES ? s.body : null;
    }, 10_000, 250);
    assert.equal(status.state, 'active');
    const usage = api(c1, 'GET', '/v1/usage', { token: first.token, fp: first.fp });
    assert.ok(usage.body.bytes.total >= FILE_BYTES, JSON.stringify(usage.body));
  });

  test('IPv6 through the exit as well', () => {
    assert.equal(c1.run('curl', ['-s', '--max-time', '5', 'http://[2001:db8:ff::1]:8000/ip']).trim(), '2001:db8:ff::2');
  });

  let second: Client;

  test('two clients cannot reach each other through the exit', async () => {
    second = connect(c2, 'two', WG2);
    assert.equal(c2.run('curl', ['-s', '--max-time', '5', 'http://203.0.113.1:8000/ip']).trim(), '203.0.113.2');
    const addr1 = (first.session.client.addresses as string[])[0]!.split('/')[0]!;
    const addr2 = (second.session.client.addresses as string[])[0]!.split('/')[0]!;
    c2.run('ip', ['route', 'replace', `${addr1}/32`, 'dev', WG2]);
    c1.run('ip', ['route', 'replace', `${addr2}/32`, 'dev', WG1]);
    assert.notEqual(c2.try('ping', ['-c', '2', '-W', '1', addr1]).status, 0);
    assert.notEqual(c1.try('ping', ['-c', '2', '-W', '1', addr2]).status, 0);
    assert.equal(c1.try('ping', ['-c', '1', '-W', '2', '203.0.113.1']).status, 0, 'the internet is still reachable');
  });

  test('the tunnel keeps moving data while the API is flooded with wrong tokens (the device has its own thread)', async () => {
    // A bounded flood on the exit's loopback (a source no client uses, so the failed-authentication
    // limit it trips blocks nobody else): autocannon, 16 connections, at most 4,000 requests/s for 6 s,
    // every request a wrong token. The second client downloads (its quota is used up by the next test anyway).
    const mark = serverLog.length;
    const flood = exit.spawn(process.execPath, [AUTOCANNON, '-j', '-c', '16', '-d', '6', '-R', '4000', '-H', 'authorization=Bearer tb_wrong_token_of_the_flood', '-H', 'x-tb-fingerprint=flood', 'http://127.0.0.1:8080/v1/usage']);
    let report = '';
    flood.stdout!.on('data', (d) => (report += d));
    const floodDone = new Promise((r) => flood.once('exit', r));
    // The download starts once the flood's wrong tokens are being answered (serve logs each request), so it
    // runs during the flood whatever the machine's load; at most 3 s, while the flood lasts 6.
    await waitFor('the flood reaching the API', () => /"route":"\/v1\/usage","status":4\d\d/.test(serverLog.slice(mark)), 20_000, 50);
    const during = c2.try('curl', ['-s', '-o', '/dev/null', '-w', '%{size_download}', '--max-time', '3', `http://203.0.113.1:8000/file?n=${8 * 1024 * 1024}`], { timeoutMs: 10_000 });
    await floodDone;
    const r = JSON.parse(report);
    assert.ok(r.requests.total > 0 && r['2xx'] === 0, `the flood ran and no wrong token was accepted: ${JSON.stringify({ total: r.requests.total, ok: r['2xx'] })}`);
    assert.ok(Number(during.stdout) > 0, 'bytes arrived through the tunnel during the flood');
    assert.equal(fetchFile(c2, 1_000_000, 10), 1_000_000, 'and the tunnel is whole afterwards');
  });

  test('quota exhaustion cuts traffic and the API answers 429; an admin upgrade restores it', async () => {
    // 40 MiB anonymous quota: use it up.
    fetchFile(c2, 48 * 1024 * 1024, 60);
    await waitFor('quota exhausted', () => api(c2, 'GET', '/v1/usage', { token: second.token, fp: second.fp }).body.quota_exhausted === true, 15_000, 250);
    await waitFor('traffic cut', () => fetchFile(c2, 100_000, 3) < 100_000, 15_000, 500);
    const again = api(c2, 'POST', '/v1/sessions', { token: second.token, fp: second.fp, body: { region: 'local' } });
    assert.equal(again.status, 429);
    const account = second.session && api(c2, 'GET', '/v1/usage', { token: second.token, fp: second.fp }).body.account_id;
    exit.run('node', [TB, 'admin', '--data', dataDir, 'account', 'set-tier', account, 'paid']);
    await waitFor('traffic restored', () => fetchFile(c2, 100_000, 3) === 100_000, 20_000, 500);
  });

  test('DELETE of the session stops its traffic at once', async () => {
    assert.equal(fetchFile(c2, 100_000, 5), 100_000);
    const del = api(c2, 'DELETE', `/v1/sessions/${second.session.id}`, { token: second.token, fp: second.fp });
    assert.equal(del.status, 200);
    assert.equal(fetchFile(c2, 100_000, 3) < 100_000, true, 'no traffic right after the DELETE');
  });

  test('kill -9 during a transfer, restart: the same config works again and recorded usage survives', async () => {
    const before = api(c1, 'GET', '/v1/usage', { token: first.token, fp: first.fp }).body.bytes.total as number;
    assert.ok(before >= FILE_BYTES);
    // rate-limited so the transfer stays well inside the 40 MiB quota whatever the machine's speed
    const transfer = c1.spawn('curl', ['-s', '-o', '/dev/null', '--limit-rate', '4M', '--max-time', '30', `http://203.0.113.1:8000/file?n=${64 * 1024 * 1024}`]);
    await new Promise((r) => setTimeout(r, 1000));
    server!.kill('SIGKILL');
    await new Promise((r) => server!.once('exit', r));
    transfer.kill();
    exit.try('ip', ['link', 'del', TUN]); // what the kernel does when the fd closes; harmless if already gone
    await startServer();
    await waitFor('the old config works again', () => fetchFile(c1, 1_000_000, 3) === 1_000_000, 30_000, 500);
    const after = api(c1, 'GET', '/v1/usage', { token: first.token, fp: first.fp }).body.bytes.total as number;
    assert.ok(after >= before, `usage before the kill (${before}) is kept (${after})`);
  });

  test('the interface deleted under the exit: the device thread reports it, the exit stops and removes its table; a restart restores', async () => {
    const s = server!;
    const exited = new Promise((r) => s.once('exit', r));
    exit.run('ip', ['link', 'del', TUN]);
    await exited;
    assert.match(serverLog, /the device stopped; shutting down/);
    assert.ok(!exit.run('nft', ['list', 'tables']).includes('tunnelbyte'), 'the table is removed');
    await startServer();
    await waitFor('the config works again', () => fetchFile(c1, 1_000_000, 3) === 1_000_000, 30_000, 500);
  });

  test('SIGTERM: counters flushed, NAT table and interface removed', async () => {
    server!.kill('SIGTERM');
    await new Promise((r) => server!.once('exit', r));
    server = null;
    assert.ok(!exit.run('nft', ['list', 'tables']).includes('tunnelbyte'), 'NAT table removed');
    assert.notEqual(exit.try('ip', ['link', 'show', TUN]).status, 0, 'interface removed');
  });
});
