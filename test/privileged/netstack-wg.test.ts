// The netstack against Linux's TCP through a stock wireguard-go peer.
//
//   this process: Tunnel (netstack 192.0.2.2 / 2001:db8:2::2, WireGuard device, UDP socket opened in ns)
//        ⇅ UDP over ns's loopback (tc netem on it for loss, reordering, duplication, delay)
//   ns: wireguard-go "wgN" 192.0.2.1/24, 2001:db8:2::1/64 — the kernel's TCP, node servers/clients
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
import { openLinuxUdpBind } from '../../src/io/linux/udp.js';
import { Tunnel } from '../../src/userspace/index.js';
import type { TunnelSocket } from '../../src/userspace/tcp-socket.js';

const skip = privilegedSkipReason(['ip', 'wg', 'wireguard-go', 'tc', 'ping']);
const MiB = 1 << 20;

let ns: Netns;
let tunnel: Tunnel;
let impaired: ImpairedBind;
let nextPort = 7000;

const kernel = (mode: string, ...args: (string | number)[]) => startKernelPeer(ns, mode, ...args);

/**
 * Impairs the WireGuard link: `tc netem` on the namespace's loopback where the kernel has sch_netem,
 * otherwise the same impairment applied to the tunnel's UDP datagrams in this process (ImpairedBind).
 */
function impair(spec: string | null, fallback: Impairment | null): 'netem' | 'userspace' | null {
  impaired.impairment = null;
  ns.try('tc', ['qdisc', 'del', 'dev', 'lo', 'root']);
  if (!spec) return null;
  if (ns.try('tc', ['qdisc', 'add', 'dev', 'lo', 'root', 'netem', ...spec.split(' ')]).status === 0) return 'netem';
  impaired.impairment = fallback;
  return 'userspace';
}

function connected(s: TunnelSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
}

/** Download: the kernel sends `bytes`; we hash them. Upload: we send, the kernel hashes and replies its sha. */
async function download(host: string, bytes: number): Promise<TunnelSocket> {
  const port = nextPort++;
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

async function upload(host: string, bytes: number): Promise<TunnelSocket> {
  const port = nextPort++;
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
      const IF = ifname('wgN');
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
      impaired = new ImpairedBind(openLinuxUdpBind({ netns: ns.name }));
      tunnel = await Tunnel.start({ config, bind: impaired });
    } finally {
      keys.cleanup();
    }
  });

  after(() => {
    tunnel?.close();
    ns?.destroy();
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

  for (const [name, spec, fallback] of [
    ['1% loss', 'loss 1%', { loss: 0.01 }],
    ['5% loss', 'loss 5%', { loss: 0.05 }],
    ['reordering', 'delay 5ms reorder 75% 50%', { delayMs: 0, reorder: 0.25, reorderMs: 5 }],
    ['duplication', 'duplicate 5%', { duplicate: 0.05 }],
    ['20 ms delay each way', 'delay 20ms', { delayMs: 20 }],
  ] as const) {
    test(`impaired link, ${name}: 4 MiB each way intact`, async (t) => {
      const how = impair(spec, fallback);
      t.diagnostic(`impairment by ${how}`);
      try {
        const before = tunnel.stack.tcpStats();
        await download('192.0.2.1', 4 * MiB);
        await upload('2001:db8:2::1', 4 * MiB);
        if (name === '5% loss') {
          const after = tunnel.stack.tcpStats();
          assert.ok(after.sackBlocksOut > before.sackBlocksOut, 'we sent SACK blocks to Linux');
          assert.ok(after.sackBlocksIn > before.sackBlocksIn, 'Linux sent SACK blocks to us');
          assert.ok(after.sackRetransmits > before.sackRetransmits, 'we retransmitted the holes Linux reported');
        }
      } finally {
        impair(null, null);
      }
    });
  }
});
