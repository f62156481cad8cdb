// A handshake flood at the real boundary (issue 15): tunnelbyte-wg as the
// exit in its own namespace, a wireguard-go client moving data through it,
// and a flooder in another namespace sending initiations with a VALID mac1
// (anyone holding the exit's public key can) as fast as it can, bounded in
// count and time (bench/handshake-flooder.cc, the benchmark's flooder) —
// from one address, then from 64.
//
// What must hold (behaviour, not speed):
//  - the client's transfer still completes: transport packets never wait
//    behind handshake work, and what the handshake queue cannot take is shed
//    before any cryptography (wireguard-go device/receive.go);
//  - a NEW client completes its handshake while the flood runs. The flood
//    comes from one address, which the exit admits to its handshake queue
//    at HANDSHAKE_QUEUE_SOURCE_RATE only, so the queue stays short, the
//    exit is not under load and the new client's first initiation is
//    answered (bench: 0.08–0.3 s). Should that initiation be lost — the
//    exit's socket overflows when this shared machine starves it of CPU —
//    or meet the exit under load and get a cookie reply, wireguard-go
//    resends after REKEY_TIMEOUT (5 s + up to 1/3 s jitter, §6.1), with mac2
//    in the cookie case. Asserted: the handshake completes while the flood
//    still runs, within three attempts (16 s): on an idle machine it takes
//    well under a second, but a CI machine shared with other work has been
//    seen to starve the exit of CPU long enough to lose two initiations
//    (10.5 s). The time and the kernel's socket drops are reported; the
//    5 s goal is a figure of `npm run bench -- --flood`, not a timed test. (The cookie round trip itself is asserted in
//    memory: test/integration/two-devices.test.ts "under load".)
//  - the exit answers garbage with silence: of datagrams without a valid
//    mac1, none gets a reply, during the flood.
//
// From 64 addresses (the second test) each address stays within its share
// of the queue while together they would fill it: the exit's UDP bind sheds
// in native code (native/src/udp-shed.cc) what the queue could not take and
// goes under load, so the flood meets cookies. What must hold there:
//  - the client's transfer completes;
//  - the NEW client's first initiation gets a cookie reply (a new source may
//    use the queue's reserve, HANDSHAKE_QUEUE_FRESH_RESERVE), and its first
//    retransmission (REKEY_TIMEOUT = 5 s + up to 1/3 s of jitter later,
//    whitepaper §6.1), carrying mac2, completes the handshake: asserted from
//    the new client's own log (wireguard-go, verbose) — a cookie received,
//    at most two initiations sent, the response received — and by its ping
//    answered before a second retransmission could have gone (10 s);
//  - garbage gets silence.
import { existsSync, rmSync } from 'node:fs';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildFlooder, rcvbufErrors } from '../../bench/flood.js';
import { finish } from '../../bench/processes.js';
import { Netns, privilegedSkipReason, veth, waitFor } from '../support/netns.js';
import { configure, genKeys, ifname, keyDir, startInterface, waitPing } from '../support/wg.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'iperf3', 'ping', 'g++']);

/** Sends `count` datagrams without a valid mac1 (random bytes; exact handshake sizes and type words among them) and counts the answers. */
const GARBAGE = `
const dgram = require('node:dgram');
const [host, port, count] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
let replies = 0, sent = 0;
s.on('message', () => replies++);
const sizes = [1, 4, 32, 64, 92, 148, 200, 1400];
function one() {
  if (sent >= Number(count)) return setTimeout(() => { console.log(JSON.stringify({ sent, replies })); s.close(); }, 1500);
  const b = require('node:crypto').randomBytes(sizes[sent % sizes.length]);
  if (b.length >= 4 && sent % 2 === 0) { b[0] = 1 + (sent % 4); b[1] = b[2] = b[3] = 0; }
  sent++;
  s.send(b, Number(port), host, () => setImmediate(one));
}
s.bind(0, one);
`;

/**
 * A wireguard-go in the foreground with its verbose log kept (the many-address test reads from it
 * what the new client sent and received); it goes with its namespace.
 */
async function startLoggedWireguardGo(ns: Netns, name: string): Promise<{ log: () => string }> {
  ns.onDestroy(() => rmSync(`/var/run/wireguard/${name}.sock`, { force: true }));
  const child = ns.spawn('wireguard-go', ['-f', name], { env: { ...process.env, LOG_LEVEL: 'verbose' } });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor(`${name}'s UAPI socket`, () => existsSync(`/var/run/wireguard/${name}.sock`), 20_000, 50);
  return { log: () => out };
}

/**
 * The exit (tunnelbyte-wg in X) with a wireguard-go client (C) that downloads 16 MiB through it while
 * the flooder (F) sends initiations with a valid mac1 as fast as it can from `sources` addresses, and a
 * new client (N) is added during the flood; then garbage from F. Everything asserted is in the caller.
 */
async function floodRun(sources: number, newClient: (n: Netns, name: string) => Promise<{ log: () => string }>) {
  const flooder = buildFlooder();
  const x = Netns.create('X');
  const c = Netns.create('C');
  const n = Netns.create('N');
  const f = Netns.create('F');
  const keys = keyDir();
  try {
    veth(x, ['198.51.100.1/24'], c, ['198.51.100.2/24']);
    // The flooder's addresses: .2, and .10 onwards for a many-address flood.
    veth(x, ['198.51.101.1/24'], f, ['198.51.101.2/24', ...Array.from({ length: sources > 1 ? sources : 0 }, (_, i) => `198.51.101.${10 + i}/24`)]);
    veth(x, ['198.51.102.1/24'], n, ['198.51.102.2/24']);
    const X = ifname('tbX');
    const C = ifname('wgC');
    const N = ifname('wgN');
    const kx = genKeys();
    const kc = genKeys();
    const kn = genKeys();
    startInterface(x, 'tunnelbyte-wg', X);
    startInterface(c, 'wireguard-go', C);
    configure(x, X, { privFile: keys.write('x', kx.priv), port: 51820, addrs: ['192.0.2.1/24'] });
    configure(c, C, { privFile: keys.write('c', kc.priv), addrs: ['192.0.2.2/24'] });
    x.run('wg', ['set', X, 'peer', kc.pub, 'allowed-ips', '192.0.2.2/32']);
    c.run('wg', ['set', C, 'peer', kx.pub, 'allowed-ips', '192.0.2.1/32', 'endpoint', '198.51.100.1:51820']);
    await waitPing(c, '192.0.2.1', 20_000);

    const iperfSrv = x.spawn('iperf3', ['-s', '-B', '192.0.2.1', '-1']);
    await waitFor('iperf3 server', () => x.try('sh', ['-c', 'ss -ltn | grep -q ":5201"']).status === 0, 20_000, 50);

    const drops0 = rcvbufErrors(x);
    // The flood: as fast as the flooder can, at most 40 s and 8 million messages.
    const from = sources > 1 ? [String(sources), '198.51.101.10'] : [];
    const floodChild = f.spawn(flooder, ['flood', '198.51.101.1', '51820', Buffer.from(kx.pub, 'base64').toString('hex'), '0', '40', '8000000', ...from]);
    const flood = finish(floodChild, 60_000);
    await new Promise((r) => setTimeout(r, 1000));

    // A bounded download from the exit through the tunnel (the exit forwards it).
    const download = finish(c.spawn('iperf3', ['-c', '192.0.2.1', '-R', '-n', '16M', '-J', '--connect-timeout', '10000']), 90_000);

    // A new client while the flood runs.
    const client = await newClient(n, N);
    configure(n, N, { privFile: keys.write('n', kn.priv), addrs: ['192.0.2.3/24'] });
    x.run('wg', ['set', X, 'peer', kn.pub, 'allowed-ips', '192.0.2.3/32']);
    n.run('wg', ['set', N, 'peer', kx.pub, 'allowed-ips', '192.0.2.1/32', 'endpoint', '198.51.102.1:51820']);
    const t0 = performance.now();
    const ping = await finish(n.spawn('ping', ['-n', '-c', '1', '-W', '17', '192.0.2.1']), 25_000);
    const handshakeS = (performance.now() - t0) / 1000;
    const floodRanThrough = floodChild.exitCode === null && floodChild.signalCode === null;
    const newClientHandshake = Number(n.run('wg', ['show', N, 'latest-handshakes']).trim().split('\t')[1]);

    // Garbage from the flooder's namespace, during the flood.
    const garbage = await finish(f.spawn(process.execPath, ['-e', GARBAGE, '198.51.101.1', '51820', '2000']), 60_000);

    const dl = await download;
    floodChild.kill('SIGTERM');
    const fl = await flood;
    iperfSrv.kill();

    const sent = JSON.parse(fl.stdout.trim().split('\n').pop() || '{}') as { sent?: number; seconds?: number };
    const socketDrops = rcvbufErrors(x) - drops0;
    console.log(`# flood from ${sources} address(es): ${sent.sent} initiations in ${sent.seconds} s; new client's ping answered after ${handshakeS.toFixed(2)} s; ${socketDrops} datagrams dropped at the exit's socket`);
    return {
      floodSent: sent.sent ?? 0,
      download: dl,
      ping,
      handshakeS,
      floodRanThrough,
      newClientHandshake,
      newClientLog: client.log(),
      garbage: JSON.parse(garbage.stdout.trim()) as { sent: number; replies: number },
      exitRunning: x.pids().length >= 1,
    };
  } finally {
    keys.cleanup();
    for (const ns of [x, c, n, f]) ns.destroy();
  }
}

function assertDownloaded(dl: { code: number | null; stdout: string }): void {
  assert.equal(dl.code, 0, `the download through the tunnel completed during the flood: ${dl.stdout.slice(0, 500)}`);
  const report = JSON.parse(dl.stdout) as { end: { sum_received: { bytes: number } } };
  assert.ok(report.end.sum_received.bytes >= 16 * 1024 * 1024, `received ${report.end.sum_received.bytes} bytes`);
}

describe('handshake flood against tunnelbyte-wg as the exit', { skip: skip ?? false }, () => {
  test('from one address: data still flows, a new client gets through, garbage gets silence', { timeout: 300_000 }, async () => {
    const r = await floodRun(1, async (n, name) => {
      startInterface(n, 'wireguard-go', name);
      return { log: () => '' };
    });
    assert.ok(r.floodSent > 10_000, `the flooder sent ${r.floodSent} initiations (a flood, not a trickle)`);
    assertDownloaded(r.download);
    assert.equal(r.ping.code, 0, `the new client's ping was answered (${r.handshakeS.toFixed(2)} s after it started)`);
    assert.ok(r.floodRanThrough, 'the flood was still running when the new client got through');
    assert.ok(r.handshakeS < 16, `the new client got through within three attempts (${r.handshakeS.toFixed(2)} s)`);
    assert.ok(r.newClientHandshake > 0, 'the new client has a handshake');
    assert.equal(r.garbage.sent, 2000);
    assert.equal(r.garbage.replies, 0, 'datagrams without a valid mac1 get no answer');
    assert.ok(r.exitRunning, 'the exit is still running');
  });

  test('from 64 addresses: data still flows, a new client gets a cookie and through at its first retry, garbage gets silence', { timeout: 300_000 }, async () => {
    const r = await floodRun(64, startLoggedWireguardGo);
    const log = r.newClientLog;
    const lines = log.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const response = at(/Received handshake response/);
    const cookie = at(/Receiving cookie response/);
    const initiations = lines.slice(0, response < 0 ? lines.length : response).filter((l) => /Sending handshake initiation/.test(l)).length;
    const why = `(the new client's log:\n${log.slice(0, 4000)})`;
    assert.ok(r.floodSent > 10_000, `the flooder sent ${r.floodSent} initiations (a flood, not a trickle)`);
    assertDownloaded(r.download);
    assert.equal(r.ping.code, 0, `the new client's ping was answered (${r.handshakeS.toFixed(2)} s after it started) ${why}`);
    assert.ok(r.floodRanThrough, 'the flood was still running when the new client got through');
    assert.ok(cookie >= 0, `the exit, under load, answered the new client's initiation with a cookie reply ${why}`);
    assert.ok(response > cookie, `the handshake response came after the cookie ${why}`);
    assert.ok(initiations <= 2, `the handshake completed at the first retransmission at the latest: ${initiations} initiations ${why}`);
    assert.ok(r.handshakeS < 10, `before a second retransmission could have gone (${r.handshakeS.toFixed(2)} s)`);
    assert.ok(r.newClientHandshake > 0, 'the new client has a handshake');
    assert.equal(r.garbage.sent, 2000);
    assert.equal(r.garbage.replies, 0, 'datagrams without a valid mac1 get no answer');
    assert.ok(r.exitRunning, 'the exit is still running');
  });
});
