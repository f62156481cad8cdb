// The netstack against Linux's TCP through a stock wireguard-go peer.
//
//   this process: Tunnel (netstack 192.0.2.2 / 2001:db8:2::2, WireGuard device, UDP socket opened in ns)
//        ⇅ UDP over ns's loopback — impaired here (below)
//   ns: wireguard-go "wgN" 192.0.2.1/24, 2001:db8:2::1/64 — the kernel's TCP, node servers/clients;
//       tcpdump on wgN sees the inner TCP in plaintext
//
// Impairments. This machine's kernel has no sch_netem (it has no modules: `modprobe` does not exist,
// `tc qdisc add dev lo root netem loss 1%` answers "Specified qdisc kind is unknown"), so:
//   - loss and duplication are done by the kernel, with nftables on the namespace's loopback
//     (test/support/nft-impair.ts: `numgen random mod 100 < N drop`, and `dup to "lo"` in the netdev
//     family), 1 % and 5 %, with 100 MiB sha256-checked transfers each way;
//   - reordering and delay, which nftables cannot do (it holds no packets), are done to the tunnel's
//     UDP datagrams in this process (test/support/impaired-bind.ts), 4 MiB each way.
// The SACK and window-scaling checks read a capture of wgN (test/support/pcap.ts, tcp-trace.ts)
// rather than the netstack's own counters.
//
// The netstack itself needs no privileges; root is only needed to make the
// namespace and to open the tunnel's UDP socket inside it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Netns, privilegedSkipReason } from '../support/netns.js';
import { configure, genKeys, ifname, keyDir, startInterface } from '../support/wg.js';
import { hashStream, sendPattern } from '../support/kernel-peer.js';
import { startKernelPeer } from '../support/kernel-peer-run.js';
import { ImpairedBind, type Impairment } from '../support/impaired-bind.js';
import { impairKernelLink, kernelImpairmentCounts, type KernelImpairment } from '../support/nft-impair.js';
import { startCapture } from '../support/capture.js';
import { tcpSegments } from '../support/pcap.js';
import { highestSent, largestScaledWindow, retransmissionReport, sackAcks, traceConnection } from '../support/tcp-trace.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLinuxUdpBind } from '../../src/io/linux/udp.js';
import { Tunnel } from '../../src/userspace/index.js';
import type { TunnelSocket } from '../../src/userspace/tcp-socket.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'nft', 'tcpdump', 'ping']);
const MiB = 1 << 20;

let ns: Netns;
let tunnel: Tunnel;
let impaired: ImpairedBind;
let nextPort = 7000;
let IF = '';
let dir = '';

const kernel = (mode: string, ...args: (string | number)[]) => startKernelPeer(ns, mode, ...args);

/** The in-process impairment of the tunnel's datagrams (reordering, delay), or none. */
function impairInProcess(imp: Impairment | null): void {
  impaired.impairment = imp;
}

/** The kernel's impairment (loss, duplication) of the datagrams to and from wireguard-go's port, or none. */
function impairKernel(imp: KernelImpairment | null): void {
  impairKernelLink(ns, 51820, imp);
}

function connected(s: TunnelSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
}

/** Download: the kernel sends `bytes`; we hash them. Upload: we send, the kernel hashes and replies its sha. */
async function download(host: string, bytes: number, port = nextPort++): Promise<TunnelSocket> {
  const k = await kernel('source', host, port, bytes, 7);
  const s = tunnel.connect(port, host);
  const got = await hashStream(s);
  const expect = createHash('sha256');
  // The same pattern the kernel sent.
  const { pattern } = await import('../support/kernel-peer.js');
  for (let off = 0; off < bytes; off += 65536) expect.update(pattern(7, off / 65536, Math.min(65536, bytes - off)));
  assert.equal(got.bytes, bytes);
  assert.equal(got.sha, expect.digest('hex'), 'downloaded bytes match');
  await k.result();
  return s;
}

async function upload(host: string, bytes: number, port = nextPort++): Promise<TunnelSocket> {
  const k = await kernel('sink', host, port);
  const s = tunnel.connect(port, host);
  await connected(s);
  const replyP = hashStream(s).catch(() => null);
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  const sha = await sendPattern(s, bytes, 11);
  s.end();
  const r = await k.result();
  assert.equal(r.bytes, bytes);
  assert.equal(r.sha, sha, 'uploaded bytes match');
  await replyP;
  assert.equal(Buffer.concat(chunks).toString(), sha, 'the reply after our FIN arrived (half-close)');
  return s;
}

describe('netstack ⇄ wireguard-go ⇄ Linux TCP', { skip: skip ?? false }, () => {
  before(async () => {
    ns = Netns.create('nst');
    const keys = keyDir();
    try {
      IF = ifname('wgN');
      dir = mkdtempSync(join(tmpdir(), 'tb-netstack-pcap-'));
      const ka = genKeys();
      const kb = genKeys();
      startInterface(ns, 'wireguard-go', IF);
      configure(ns, IF, { privFile: keys.write('a', ka.priv), port: 51820, addrs: ['192.0.2.1/24', '2001:db8:2::1/64'], mtu: 1420 });
      ns.run('wg', ['set', IF, 'peer', kb.pub, 'allowed-ips', '192.0.2.2/32,2001:db8:2::2/128']);
      const config = [
        '[Interface]',
        `PrivateKey = ${kb.priv}`,
        'Address = 192.0.2.2/32, 2001:db8:2::2/128',
        'MTU = 1420',
        '[Peer]',
        `PublicKey = ${ka.pub}`,
        'Endpoint = 127.0.0.1:51820',
        'AllowedIPs = 192.0.2.0/24, 2001:db8:2::/64',
        'PersistentKeepalive = 25',
      ].join('\n');
      // Without GSO: a GSO batch crosses lo as one packet, and the nftables rules must meet each datagram.
      impaired = new ImpairedBind(openLinuxUdpBind({ netns: ns.name, gso: false }));
      tunnel = await Tunnel.start({ config, bind: impaired });
    } finally {
      keys.cleanup();
    }
  });

  after(() => {
    tunnel?.close();
    ns?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('the kernel pings the netstack over IPv4 and IPv6 (ICMP echo through WireGuard)', async () => {
    // The first datagram from us starts the handshake (wireguard-go has no endpoint for us yet).
    const u = tunnel.udp();
    u.send('hello', 9, '192.0.2.1');
    // ping runs asynchronously: this process must keep answering while it waits.
    const ping = (addr: string) =>
      new Promise<number | null>((r) => ns.spawn('ping', [addr.includes(':') ? '-6' : '-4', '-c', '3', '-i', '0.2', '-W', '2', addr]).once('exit', r));
    assert.equal(await ping('192.0.2.2'), 0, 'IPv4 echo replies');
    assert.equal(await ping('2001:db8:2::2'), 0, 'IPv6 echo replies');
    assert.ok(tunnel.stack.received.icmp >= 6);
    u.close();
  });

  test('UDP through the tunnel: a kernel echo server answers, IPv4 and IPv6', async () => {
    for (const host of ['192.0.2.1', '2001:db8:2::1']) {
      const port = nextPort++;
      const k = await kernel('udp-echo', host, port);
      const u = tunnel.udp();
      const got = new Promise<string>((r) => u.once('message', (m: Buffer) => r(m.toString())));
      u.send(`datagram to ${host}`, port, host);
      assert.equal(await got, `datagram to ${host}`);
      u.close();
      k.proc.kill();
    }
  });

  for (const host of ['192.0.2.1', '2001:db8:2::1']) {
    test(`100 MiB each way over ${host.includes(':') ? 'IPv6' : 'IPv4'}, sha256-checked; window scaling used both ways, SACK negotiated`, async () => {
      const d = await download(host, 100 * MiB);
      const c = d.connection;
      assert.ok(c.windowScaling, 'window scaling on');
      assert.ok(c.sndShift > 0, `Linux scales its window (shift ${c.sndShift})`);
      assert.ok(c.sackOk, 'SACK permitted both ways');
      const u = await upload(host, 100 * MiB);
      assert.ok(u.connection.largestPeerWindow > 65535, `Linux advertised more than 64 KiB (${u.connection.largestPeerWindow}), which only scaling can express`);
    });
  }

  test('inbound: a kernel client connects to tunnel.listen and uploads; we reply after its FIN', async () => {
    const port = nextPort++;
    const got = new Promise<string>((resolve, reject) => {
      const srv = tunnel.listen(port, (s) => {
        srv.close();
        assert.equal(s.remoteAddress, '192.0.2.1');
        hashStream(s).then((r) => {
          s.end(`${r.bytes}:${r.sha}`);
          resolve(r.sha);
        }, reject);
      }, { allowHalfOpen: true });
    });
    const k = await kernel('upload', '192.0.2.2', port, 4 * MiB, 5);
    const sha = await got;
    const r = await k.result();
    assert.equal(r.reply, `${4 * MiB}:${sha}`);
  });

  test('connection refused: the kernel answers RST, connect fails with ECONNREFUSED', async () => {
    const s = tunnel.connect(1, '192.0.2.1');
    const err = await new Promise<NodeJS.ErrnoException>((r) => s.once('error', r));
    assert.equal(err.code, 'ECONNREFUSED');
  });

  test('RST mid-stream: the kernel resets, the socket errors with ECONNRESET', async () => {
    const port = nextPort++;
    const k = await kernel('reset', '192.0.2.1', port);
    const s = tunnel.connect(port, '192.0.2.1');
    await connected(s);
    s.write('trigger');
    const err = await new Promise<NodeJS.ErrnoException>((r) => s.once('error', r));
    assert.equal(err.code, 'ECONNRESET');
    await k.result();
  });

  // Capture and assert, IPv4 and IPv6: both SYNs carry wscale and SACK-permitted; the windows scaled
  // beyond 64 KiB; under loss toward the netstack its ACKs carry SACK blocks; under loss toward the
  // kernel the netstack retransmits only what the kernel's SACK blocks left uncovered. Loss is one
  // way at a time so that the capture (on the kernel's side) holds every ACK the sender got.
  for (const [family, host, self] of [['IPv4', '192.0.2.1', '192.0.2.2'], ['IPv6', '2001:db8:2::1', '2001:db8:2::2']] as const) {
    test(`capture on wgN, ${family}, 5 % loss one way at a time: wscale and SACK-permitted in both SYNs, windows beyond 64 KiB, SACK blocks sent by the netstack and honoured by it`, async (t) => {
      const downPort = nextPort++;
      const upPort = nextPort++;
      const file = join(dir, `${family}.pcap`);
      const cap = await startCapture(ns, IF, file, `tcp port ${downPort} or tcp port ${upPort}`);
      // The netstack's retransmission timeouts as it reports them, on the capture's clock (see retransmissionReport).
      const timeouts: number[] = [];
      const tick = tunnel.stack.tick.bind(tunnel.stack);
      tunnel.stack.tick = () => {
        const before = tunnel.stack.tcpStats().timeouts;
        tick();
        if (tunnel.stack.tcpStats().timeouts > before) timeouts.push(Date.now() / 1000);
      };
      let counts;
      try {
        impairKernel({ lossPercent: 5, direction: 'from' });
        await download(host, 8 * MiB, downPort);
        counts = kernelImpairmentCounts(ns);
        impairKernel({ lossPercent: 5, direction: 'to' });
        await upload(host, 8 * MiB, upPort);
        const c2 = kernelImpairmentCounts(ns);
        counts = { toNetstack: counts.dropped, toKernel: c2.dropped };
      } finally {
        impairKernel(null);
        tunnel.stack.tick = tick;
      }
      const stats = await cap.stop();
      assert.equal(stats.droppedByKernel, 0, 'tcpdump saw every packet');
      const segs = tcpSegments(file);
      const netstack = { host: self, port: 0 };
      const down = traceConnection(segs, netstack, { host, port: downPort });
      const up = traceConnection(segs, netstack, { host, port: upPort });
      for (const [name, c] of [['download', down], ['upload', up]] as const) {
        assert.ok(c.syn.options.wscale !== null && c.syn.options.sackPermitted, `${name}: the netstack's SYN carries wscale and SACK-permitted`);
        assert.ok(c.synAck.options.wscale !== null && c.synAck.options.sackPermitted, `${name}: Linux's SYN-ACK carries wscale and SACK-permitted`);
      }
      // RFC 7323 §2.2: a window field is 16 bits; only the scale factor lets a receiver offer more than 65,535 bytes.
      const netstackWindow = largestScaledWindow(down, true);
      const kernelWindow = largestScaledWindow(up, false);
      assert.ok(netstackWindow > 65535, `the netstack offered a window beyond 64 KiB (${netstackWindow}, shift ${down.syn.options.wscale})`);
      assert.ok(kernelWindow > 65535, `Linux offered a window beyond 64 KiB (${kernelWindow}, shift ${up.synAck.options.wscale})`);
      // The netstack as receiver: ACKs with SACK blocks (RFC 2018 §4), each above its cumulative ACK and within what Linux sent.
      const ours = sackAcks(down, true);
      const sent = highestSent(down, false);
      assert.ok(ours.length > 0, 'the netstack sent SACK blocks for the holes the loss made');
      for (const a of ours) for (const [l, r] of a.blocks) assert.ok(a.ack < l && l < r && r <= sent, `a SACK block [${l}, ${r}) above ACK ${a.ack}, within ${sent}`);
      // The netstack as sender: Linux reported holes, and the netstack re-sent only bytes Linux had not reported holding.
      assert.ok(sackAcks(up, false).length > 0, 'Linux sent SACK blocks');
      const r = retransmissionReport(up, true, timeouts);
      t.diagnostic(`dropped ${counts.toNetstack} datagrams toward the netstack, ${counts.toKernel} toward Linux; ${ours.length} SACK ACKs from the netstack; windows ${netstackWindow}/${kernelWindow}; upload: ${r.retransmissions} retransmissions (${r.retransmittedBytes} bytes, ${r.afterTimeoutBytes} after ${timeouts.length} timeouts), ${r.needlessBytes} needless`);
      assert.ok(r.retransmissions > 0, 'the netstack retransmitted');
      assert.equal(r.needlessBytes, 0, `retransmissions of bytes Linux had acknowledged or SACKed: ${JSON.stringify(r.needless)}`);
    });
  }

  // Loss and duplication in the kernel (nftables), both ways on the link; the direction of each transfer
  // alternates the address family so both families see both rates. 100 MiB each way: the netstack as sender
  // repairs lost retransmissions and tails with RACK-TLP (RFC 8985) rather than its retransmission timer.
  for (const [name, imp] of [
    ['1 % loss', { lossPercent: 1 }],
    ['5 % loss', { lossPercent: 5 }],
    ['1 % duplication', { duplicatePercent: 1 }],
    ['5 % duplication', { duplicatePercent: 5 }],
  ] as const) {
    const upBytes = 100 * MiB;
    test(`kernel-impaired link (nftables), ${name} both ways: 100 MiB down, 100 MiB up, intact`, async (t) => {
      const [downHost, upHost] = name.startsWith('5') ? ['2001:db8:2::1', '192.0.2.1'] : ['192.0.2.1', '2001:db8:2::1'];
      impairKernel(imp);
      try {
        const before = tunnel.stack.tcpStats();
        const t0 = performance.now();
        await download(downHost, 100 * MiB);
        const t1 = performance.now();
        await upload(upHost, upBytes);
        const t2 = performance.now();
        const after = tunnel.stack.tcpStats();
        const k = kernelImpairmentCounts(ns);
        const rate = (bytes: number, ms: number): string => `${((bytes * 8) / ms / 1000).toFixed(0)} Mbit/s`;
        t.diagnostic(`nft dropped ${k.dropped}, duplicated ${k.duplicated}; down ${rate(100 * MiB, t1 - t0)}, up ${rate(upBytes, t2 - t1)}; netstack retransmits ${after.retransmits - before.retransmits}, timeouts ${after.timeouts - before.timeouts}, RACK-lost ${after.rackLost - before.rackLost}, tail loss probes ${after.tailLossProbes - before.tailLossProbes}`);
        if (imp.lossPercent) assert.ok(k.dropped > 0, 'the kernel dropped datagrams');
        if (imp.duplicatePercent) assert.ok(k.duplicated > 0, 'the kernel duplicated datagrams');
      } finally {
        impairKernel(null);
      }
    });
  }

  for (const [name, imp] of [
    ['reordering', { delayMs: 0, reorder: 0.25, reorderMs: 5 }],
    ['20 ms delay each way', { delayMs: 20 }],
  ] as const) {
    test(`in-process impaired datagrams, ${name}: 4 MiB each way intact`, async () => {
      impairInProcess(imp);
      try {
        await download('192.0.2.1', 4 * MiB);
        await upload('2001:db8:2::1', 4 * MiB);
        assert.ok(impaired.counts.delayed > 0, 'datagrams were held back');
      } finally {
        impairInProcess(null);
      }
    });
  }
});
